"""Traffic with known ground truth: simulated visitors of known personas.

Behaviour is derived from the catalog so it works for any catalog: each persona prefers
the feature values its linking rules name (so the rules are informative) *and* has hidden
preferences drawn from a seeded Dirichlet (so there is more to learn from labels than the
rules know). Events are valid native events (INTERFACES.md 1.1).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from models.catalog import Catalog

USER_AGENTS = {
    "desktop": [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    ],
    "mobile": [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    ],
    "tablet": [
        "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ],
}
ENTRY = {
    "paid_search": (
        "?utm_source=google&utm_medium=cpc&utm_campaign={c}",
        "https://www.google.com/",
    ),
    "organic_search": ("", "https://www.google.com/"),
    "social": (
        "?utm_source=linkedin&utm_medium=social&utm_campaign={c}",
        "https://www.linkedin.com/",
    ),
    "email": ("?utm_source=newsletter&utm_medium=email&utm_campaign={c}", ""),
    "display": (
        "?utm_source=adnet&utm_medium=display&utm_campaign={c}",
        "https://news.example.net/",
    ),
    "referral": ("", "https://partner.example.org/blog/review"),
    "direct": ("", ""),
}
DWELL = {"short": (1_000, 9_000), "medium": (10_000, 59_000), "long": (60_000, 600_000)}
TOUCHES = [
    "email:open",
    "email:click",
    "webinar:attend",
    "form:submit",
    "chat:reply",
    "event:attend",
    "social:click",
    "display:impression",
    "store:purchase",
]
COUNTRIES = ["US", "DE", "GB", "FR", "IN", "JP", "BR", "AU", "CA", "NL"]
CAMPAIGNS = ["q4-launch", "brand", "retarget", "webinar-series", "newsletter"]
SITE = "https://www.acme-analytics.example"


def catalog_paths(catalog: Catalog) -> dict[str, list[str]]:
    """A few site paths per page category of the catalog (what simulated visitors browse)."""
    paths: dict[str, list[str]] = {}
    for rule in catalog.page_categories:
        stem = rule.pattern.rstrip("*") or "/"
        slugs = ["", "overview", "getting-started", "advanced"] if stem != "/" else [""]
        for slug in slugs:
            path = stem if not slug else f"{stem.rstrip('/')}/{slug}"
            if catalog.page_category(path) == rule.category:
                paths.setdefault(rule.category, []).append(path)
    return paths


@dataclass
class SimVisitor:
    visitor_id: str
    persona: str
    labelled: bool
    events: list[dict[str, Any]] = field(default_factory=list)


class Simulator:
    def __init__(
        self,
        catalog: Catalog,
        seed: int = 0,
        labelled_fraction: float = 0.1,
        events_per_visitor: float = 8.0,
        start: datetime | None = None,
        hidden_strength: float = 0.5,
    ) -> None:
        self.catalog = catalog
        self.personas = catalog.persona_ids
        self.rng = random.Random(seed)
        self.labelled_fraction = labelled_fraction
        self.events_per_visitor = events_per_visitor
        self.clock = start or datetime.now(UTC) - timedelta(hours=6)
        self.truth: dict[str, str] = {}
        self.paths = catalog_paths(self.catalog)
        groups = {
            "device": list(USER_AGENTS),
            "channel": list(ENTRY),
            "page": list(self.paths),
            "dwell": list(DWELL),
            "touch": TOUCHES,
            "country": COUNTRIES,
        }
        self.profiles = {p: self._profile(p, groups, hidden_strength) for p in self.personas}
        weights = [self.rng.uniform(0.5, 1.5) for _ in self.personas]
        self.mix = [w / sum(weights) for w in weights]

    def _profile(
        self, persona: str, groups: dict[str, list[str]], hidden: float
    ) -> dict[str, list[float]]:
        boosts: dict[tuple[str, str], float] = {}
        for rule in self.catalog.linking_rules:
            if rule.persona != persona or rule.weight <= 0:
                continue
            for feature, values in rule.when.items():
                for v in values:
                    boosts[(feature, v)] = boosts.get((feature, v), 0.0) + rule.weight
        profile = {}
        for group, values in groups.items():
            rule_part = [0.05 + boosts.get((group, v), 0.0) for v in values]
            hidden_part = [self.rng.gammavariate(0.4, 1.0) for _ in values]
            r_sum, h_sum = sum(rule_part), sum(hidden_part) or 1.0
            mixed = [
                (1 - hidden) * r / r_sum + hidden * h / h_sum
                for r, h in zip(rule_part, hidden_part, strict=True)
            ]
            profile[group] = mixed
        return profile

    def _pick(self, persona: str, group: str, values: list[str]) -> str:
        return self.rng.choices(values, weights=self.profiles[persona][group])[0]

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def visitor(self) -> SimVisitor:
        rng = self.rng
        persona = rng.choices(self.personas, weights=self.mix)[0]
        v = SimVisitor(f"sim-{self._id()}", persona, rng.random() < self.labelled_fraction)
        self.truth[v.visitor_id] = persona
        device = self._pick(persona, "device", list(USER_AGENTS))
        ctx = {
            "user_agent": rng.choice(USER_AGENTS[device]),
            "country": self._pick(persona, "country", COUNTRIES),
            "locale": "en-US",
        }
        ts = self.clock + timedelta(seconds=rng.uniform(0, 3600))
        n = max(1, min(60, int(rng.expovariate(1.0 / self.events_per_visitor)) + 1))
        channel = self._pick(persona, "channel", list(ENTRY))
        query, referrer = ENTRY[channel]
        user_id = None
        for i in range(n):
            base = {"event_id": self._id(), "visitor_id": v.visitor_id, "context": ctx}
            roll = rng.random()
            if i == 0 or roll < 0.75:
                category = self._pick(persona, "page", list(self.paths))
                low, high = DWELL[self._pick(persona, "dwell", list(DWELL))]
                dwell_ms = rng.randint(low, high)
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
                }
                ts += timedelta(milliseconds=dwell_ms)
            elif roll < 0.92:
                touch = self._pick(persona, "touch", TOUCHES)
                tp_channel, action = touch.split(":")
                event = {
                    **base,
                    "type": "touchpoint",
                    "channel": tp_channel,
                    "action": action,
                    "campaign": rng.choice(CAMPAIGNS),
                }
            elif roll < 0.97:
                kind = rng.choice(["nps", "csat", "ces"])
                low, high = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}[kind]
                lean = (self.personas.index(persona) + 1) / (len(self.personas) + 1)
                score = round(low + (high - low) * min(1.0, max(0.0, rng.gauss(lean, 0.2))))
                event = {**base, "type": "feedback", "kind": kind, "score": score}
            else:
                user_id = user_id or f"crm-{self._id()[:12]}"
                event = {
                    **base,
                    "type": "identify",
                    "user_id": user_id,
                    "traits": {"email": f"{user_id}@example.com", "job_title": persona},
                }
            ts += timedelta(seconds=rng.uniform(1, 30))
            event["ts"] = ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            if user_id:
                event["user_id"] = user_id
            v.events.append(event)
        if v.labelled:
            ts += timedelta(seconds=5)
            v.events.append(
                {
                    "event_id": self._id(),
                    "visitor_id": v.visitor_id,
                    "type": "label",
                    "persona": persona,
                    "source": "survey",
                    "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                }
            )
        return v

    def visitors(self, n: int) -> Iterator[SimVisitor]:
        for _ in range(n):
            yield self.visitor()

    def events(self, n_visitors: int, concurrency: int = 50) -> Iterator[dict[str, Any]]:
        """Same as :meth:`stream`; ground truth is in ``self.truth`` (visitor_id -> persona)."""
        return self.stream(n_visitors, concurrency)

    def stream(self, n_visitors: int, concurrency: int = 50) -> Iterator[dict[str, Any]]:
        """Events of ``n_visitors`` interleaved like live traffic; each visitor's stay in order."""
        active: list[list[dict[str, Any]]] = []
        made = 0
        while made < n_visitors or active:
            while made < n_visitors and len(active) < concurrency:
                active.append(list(reversed(self.visitor().events)))
                made += 1
            i = self.rng.randrange(len(active))
            yield active[i].pop()
            if not active[i]:
                active.pop(i)
