"""Simulated worlds with a known optimum: visitors of known personas and their exact posterior.

Each world is derived from a catalog (the personas prefer what their linking rules name,
mixed with hidden, seeded preferences the rules do not know) and knows the likelihoods it
samples from, so every visitor carries the **oracle**: the Bayes posterior over personas
given everything observable in its events. A model can then be measured against the best
possible, not only in absolute numbers.

Two kinds of world:

* ``"sessions"`` (world A, like a real site): device and user agent and country per visitor;
  several sessions per visitor, each with a channel (only its first page carries the UTM
  parameters or the referrer; later pages are internal), a time of day; page views with a
  continuous (log-normal) dwell time; touchpoints and feedback. Given the persona, the
  observations are independent (naive Bayes is the right model).
* ``"markov"`` (world B, breaks naive Bayes): the same, but each next page depends on the
  persona *and* the previous page (visitors read several pages of one section in a row), so
  counting pages as independent evidence is overconfident. The optimum is still exact.

Everything observable that the oracle uses: user agent, country, each session's hour and
channel, the landing page and every page transition, dwell, event types, touchpoints and
feedback scores. Numbers of sessions and events, URLs within a category, campaigns and the
gaps between events do not depend on the persona (they carry no information).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from models.catalog import Catalog
from models.simulator import (
    CAMPAIGNS,
    COUNTRIES,
    ENTRY,
    SITE,
    TOUCHES,
    USER_AGENTS,
    catalog_paths,
)

WORLD_KINDS = ("sessions", "markov")
DEVICES = list(USER_AGENTS)
UAS = [(d, ua) for d in DEVICES for ua in USER_AGENTS[d]]
CHANNELS = list(ENTRY)
EVENT_TYPES = ["page_view", "touchpoint", "feedback"]
FEEDBACK = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
HOUR_BUCKETS = {"night": range(0, 6), "morning": range(6, 12), "afternoon": range(12, 18)}
HOUR_BUCKETS["evening"] = range(18, 24)
REGION_COUNTRIES = {"emea": {"DE", "GB", "FR", "NL"}, "amer": {"US", "BR", "CA"}}
REGION_COUNTRIES["apac"] = {"IN", "JP", "AU"}
UA_TRAITS = {  # (os, browser) of each sample user agent, for linking rules on os/browser
    0: ("Windows", "Chrome"),
    1: ("Mac OS X", "Safari"),
    2: ("Linux", "Firefox"),
    3: ("Windows", "Edge"),
    4: ("iOS", "Mobile Safari"),
    5: ("Android", "Chrome Mobile"),
    6: ("iOS", "Mobile Safari"),
    7: ("Android", "Chrome"),
}
DWELL_SHIFT = {"short": -0.8, "medium": 0.0, "long": 0.8}  # log-dwell shift per rule weight


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _normal(values: list[float]) -> list[float]:
    total = sum(values)
    return [v / total for v in values]


@dataclass
class WorldVisitor:
    """A simulated visitor; ``oracle`` is its exact posterior given all its events and
    ``oracle_top`` the oracle's top persona after each of its (non-label) events."""

    visitor_id: str
    persona: str
    labelled: bool
    events: list[dict[str, Any]] = field(default_factory=list)
    oracle: dict[str, float] = field(default_factory=dict)
    oracle_top: list[str] = field(default_factory=list)


@dataclass
class _Persona:
    device: list[float]
    ua: list[float]  # P(user agent | device), over UAS (zero outside the device)
    country: list[float]
    hour: list[float]
    channel: list[float]
    page: list[float]
    landing: list[float]
    transition: list[list[float]]  # markov: P(next | previous); sessions: rows = page
    types: list[float]
    touch: list[float]
    feedback: dict[str, list[float]]
    dwell_mu: float
    dwell_sigma: float


class World:
    """Visitors of a catalog's personas with known likelihoods (see the module docstring).

    ``hidden_strength`` is the share of each preference the rules do not describe (0 = the
    world follows the rules, 1 = the rules say nothing true).
    """

    def __init__(
        self,
        catalog: Catalog,
        seed: int = 0,
        kind: str = "sessions",
        labelled_fraction: float = 1.0,
        hidden_strength: float = 0.5,
        sessions_mean: float = 2.5,
        events_per_session: float = 4.0,
        session_gap_h: float = 10.0,
        start: datetime | None = None,
    ) -> None:
        if kind not in WORLD_KINDS:
            raise ValueError(f"kind must be one of {WORLD_KINDS}")
        self.catalog = catalog
        self.kind = kind
        self.personas = catalog.persona_ids
        self.rng = random.Random(seed)
        self.labelled_fraction = labelled_fraction
        self.hidden = hidden_strength
        self.sessions_mean = sessions_mean
        self.events_per_session = events_per_session
        self.session_gap_h = session_gap_h
        self.clock = start or datetime(2026, 11, 2, tzinfo=UTC)
        self.paths = catalog_paths(self.catalog)
        self.categories = list(self.paths)
        weights = [self.rng.uniform(0.5, 1.5) for _ in self.personas]
        self.mix = _normal(weights)
        self.log_mix = [math.log(w) for w in self.mix]
        self.params = [self._persona(p) for p in self.personas]

    # -- the world's likelihoods ---------------------------------------------------------
    def _boosts(self, persona: str) -> dict[tuple[str, str], float]:
        boosts: dict[tuple[str, str], float] = {}
        for rule in self.catalog.linking_rules:
            if rule.persona != persona or rule.weight <= 0:
                continue
            for feature, values in rule.when.items():
                for v in values:
                    boosts[(feature, v)] = boosts.get((feature, v), 0.0) + rule.weight
        return boosts

    def _mixed(self, rule_part: list[float], concentration: float = 0.4) -> list[float]:
        hidden = [self.rng.gammavariate(concentration, 1.0) + 1e-3 for _ in rule_part]
        r, h = _normal(rule_part), _normal(hidden)
        return [(1 - self.hidden) * a + self.hidden * b for a, b in zip(r, h, strict=True)]

    def _persona(self, persona: str) -> _Persona:
        rng, b = self.rng, self._boosts(persona)

        def part(feature: str, values: list[str]) -> list[float]:
            return [0.2 + b.get((feature, v), 0.0) for v in values]

        device = self._mixed(part("device", DEVICES))
        ua_rule = [
            0.5 + b.get(("os", UA_TRAITS[i][0]), 0.0) + b.get(("browser", UA_TRAITS[i][1]), 0.0)
            for i in range(len(UAS))
        ]
        ua: list[float] = []
        for d in DEVICES:
            idx = [i for i, (dev, _) in enumerate(UAS) if dev == d]
            within = self._mixed([ua_rule[i] for i in idx], 1.0)
            ua_d = dict(zip(idx, within, strict=True))
            ua.extend(ua_d[i] for i in idx)
        country_rule = [
            0.2
            + b.get(("country", c), 0.0)
            + sum(b.get(("region", r), 0.0) for r, cs in REGION_COUNTRIES.items() if c in cs)
            for c in COUNTRIES
        ]
        country = self._mixed(country_rule)
        peak, amp = rng.uniform(0, 24), rng.uniform(0.5, 1.5)
        hour_rule = [
            0.2 + sum(b.get(("hour", k), 0.0) for k, hs in HOUR_BUCKETS.items() if h in hs)
            for h in range(24)
        ]
        smooth = _normal(
            [math.exp(amp * math.cos(2 * math.pi * (h - peak) / 24)) for h in range(24)]
        )
        r = _normal(hour_rule)
        hour = [(1 - self.hidden) * x + self.hidden * y for x, y in zip(r, smooth, strict=True)]
        channel = self._mixed(part("channel", CHANNELS))
        page = self._mixed(part("page", self.categories))
        k = len(self.categories)
        if self.kind == "markov":
            landing = self._mixed(part("page", self.categories))
            stay = rng.uniform(0.2, 0.7)
            transition = []
            for i in range(k):
                row = self._mixed(part("page", self.categories), 0.3)
                transition.append(
                    [
                        stay * (j == i) + (1 - stay) * (0.5 * page[j] + 0.5 * row[j])
                        for j in range(k)
                    ]
                )
        else:
            landing = page
            transition = [page] * k
        pv = rng.uniform(0.55, 0.85)
        split = rng.uniform(0.5, 0.85)
        types = [pv, (1 - pv) * split, (1 - pv) * (1 - split)]
        touch = self._mixed(
            [
                0.2
                + b.get(("touch", t), 0.0)
                + b.get(("action", t.split(":")[1]), 0.0)
                + b.get(("type", "touchpoint"), 0.0)
                for t in TOUCHES
            ]
        )
        lean = rng.uniform(0.15, 0.9)
        feedback = {}
        for kind, (low, high) in FEEDBACK.items():
            feedback[kind] = _normal(
                [
                    math.exp(-(((s - low) / (high - low) - lean) ** 2) / (2 * 0.2**2)) + 0.02
                    for s in range(low, high + 1)
                ]
            )
        mu = math.log(20_000) + rng.gauss(0.0, 0.6)
        mu += sum(DWELL_SHIFT[v] * w for (f, v), w in b.items() if f == "dwell")
        sigma = rng.uniform(0.5, 1.1)
        return _Persona(
            device, ua, country, hour, channel, page, landing, transition, types, touch,
            feedback, mu, sigma,
        )  # fmt: skip

    # -- visitors --------------------------------------------------------------------------
    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _sample(self, dist_of: Any, ll: list[float], truth: int) -> int:
        i = self.rng.choices(
            range(len(dist_of(self.params[truth]))), weights=dist_of(self.params[truth])
        )[0]
        for c, p in enumerate(self.params):
            ll[c] += math.log(dist_of(p)[i])
        return i

    def _posterior(self, ll: list[float]) -> list[float]:
        logits = [m + v for m, v in zip(self.log_mix, ll, strict=True)]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return [e / total for e in exps]

    def visitor(self) -> WorldVisitor:
        rng = self.rng
        truth = rng.choices(range(len(self.personas)), weights=self.mix)[0]
        persona = self.personas[truth]
        v = WorldVisitor(f"w-{self._id()}", persona, rng.random() < self.labelled_fraction)
        ll = [0.0] * len(self.personas)
        tops: list[str] = []
        d = self._sample(lambda p: p.device, ll, truth)
        ua_idx = [i for i, (dev, _) in enumerate(UAS) if dev == DEVICES[d]]
        u = self._sample(lambda p: [p.ua[i] for i in ua_idx], ll, truth)
        country = COUNTRIES[self._sample(lambda p: p.country, ll, truth)]
        ctx = {"user_agent": UAS[ua_idx[u]][1], "country": country, "locale": "en-US"}
        n_sessions = 1
        while n_sessions < 8 and rng.random() > 1 / self.sessions_mean:
            n_sessions += 1
        when = self.clock + timedelta(days=rng.uniform(0, 20))
        end = when
        for _ in range(n_sessions):
            hour = self._sample(lambda p: p.hour, ll, truth)
            day = (end + timedelta(hours=1 + rng.expovariate(1 / self.session_gap_h))).date()
            when = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
            when += timedelta(seconds=rng.uniform(0, 3599))
            if when < end + timedelta(hours=1):
                when += timedelta(days=1)
            channel = CHANNELS[self._sample(lambda p: p.channel, ll, truth)]
            query, referrer = ENTRY[channel]
            n_events = 1
            while n_events < 30 and rng.random() > 1 / self.events_per_session:
                n_events += 1
            prev = -1
            for i in range(n_events):
                base = {"event_id": self._id(), "visitor_id": v.visitor_id, "context": ctx}
                kind = (
                    "page_view"
                    if i == 0
                    else EVENT_TYPES[self._sample(lambda p: p.types, ll, truth)]
                )
                if kind == "page_view":
                    if prev < 0:
                        cat = self._sample(lambda p: p.landing, ll, truth)
                    else:
                        row = prev
                        cat = self._sample(lambda p, r=row: p.transition[r], ll, truth)
                    prev = cat
                    category = self.categories[cat]
                    p_true = self.params[truth]
                    dwell_ms = max(
                        1, round(math.exp(rng.gauss(p_true.dwell_mu, p_true.dwell_sigma)))
                    )
                    x = math.log(dwell_ms)
                    for c, p in enumerate(self.params):
                        z = (x - p.dwell_mu) / p.dwell_sigma
                        ll[c] += -0.5 * z * z - math.log(p.dwell_sigma)
                    url = SITE + rng.choice(self.paths[category])
                    if i == 0:
                        url += query.format(c=rng.choice(CAMPAIGNS))
                    event = {
                        **base,
                        "type": "page_view",
                        "url": url,
                        "title": category.title(),
                        "referrer": referrer if i == 0 else SITE + "/",
                        "dwell_ms": dwell_ms,
                        "ts": _ts(when),
                    }
                    when += timedelta(milliseconds=dwell_ms)
                elif kind == "touchpoint":
                    touch = TOUCHES[self._sample(lambda p: p.touch, ll, truth)]
                    tp_channel, action = touch.split(":")
                    event = {
                        **base,
                        "type": "touchpoint",
                        "channel": tp_channel,
                        "action": action,
                        "campaign": rng.choice(CAMPAIGNS),
                        "ts": _ts(when),
                    }
                else:
                    fb = rng.choice(list(FEEDBACK))
                    s = self._sample(lambda p, k=fb: p.feedback[k], ll, truth)
                    score = FEEDBACK[fb][0] + s
                    event = {
                        **base,
                        "type": "feedback",
                        "kind": fb,
                        "score": score,
                        "ts": _ts(when),
                    }
                when += timedelta(seconds=rng.uniform(1, 20))
                v.events.append(event)
                post = self._posterior(ll)
                tops.append(self.personas[max(range(len(post)), key=post.__getitem__)])
            end = when
        if v.labelled:
            v.events.append(
                {
                    "event_id": self._id(),
                    "visitor_id": v.visitor_id,
                    "type": "label",
                    "persona": persona,
                    "source": "survey",
                    "ts": _ts(end + timedelta(seconds=5)),
                }
            )
        v.oracle = dict(zip(self.personas, self._posterior(ll), strict=True))
        v.oracle_top = tops
        return v

    def visitors(self, n: int) -> Iterator[WorldVisitor]:
        for _ in range(n):
            yield self.visitor()


def random_catalog(
    seed: int, n_personas: int = 5, n_pages: int = 12, loose: float = 0.3
) -> Catalog:
    """A catalog as a marketing team might write one: a few rules per persona, of rough
    weights, some of them (share ``loose``) pointing at the wrong persona."""
    rng = random.Random(seed)
    personas = [f"persona_{i}" for i in range(n_personas)]
    pages = [f"sec{chr(97 + i)}" for i in range(n_pages)]
    rules: list[dict[str, Any]] = []
    options = {
        "device": DEVICES,
        "channel": CHANNELS,
        "touch": TOUCHES,
        "dwell": ["short", "long"],
        "region": list(REGION_COUNTRIES),
        "hour": list(HOUR_BUCKETS),
        "os": ["Linux", "Mac OS X", "iOS", "Android", "Windows"],
    }
    for p in personas:
        for _ in range(rng.randint(1, 3)):
            target = rng.choice(personas) if rng.random() < loose else p
            chosen = rng.sample(pages, rng.randint(1, 3))
            rules.append(
                {
                    "persona": target,
                    "when": {"page": chosen},
                    "weight": rng.choice([0.5, 1.0, 1.5, 2.0, 3.0]),
                }
            )
        for _ in range(rng.randint(1, 3)):
            target = rng.choice(personas) if rng.random() < loose else p
            feature = rng.choice(list(options))
            values = rng.sample(options[feature], 1 + (rng.random() < 0.3))
            rules.append(
                {
                    "persona": target,
                    "when": {feature: values},
                    "weight": rng.choice([0.3, 0.5, 1.0, 1.5]),
                }
            )
    doc = {
        "name": f"random-{seed}",
        "personas": [{"id": p, "name": p.replace("_", " ").title()} for p in personas],
        "linking_rules": rules,
        "page_categories": [{"pattern": f"/{s}*", "category": s} for s in pages]
        + [{"pattern": "/", "category": "home"}],
    }
    return Catalog.from_dict(doc)
