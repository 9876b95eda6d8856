"""PersonaMapper: one visitor's events -> probabilities over every catalog persona.

How rules and labels combine (see docs/MODELLING.md):

* Each event x_t gives evidence for persona c: ``e_t(c) = log p(c | x_t) - log b(c)``,
  where ``b`` is the base rate. A visitor's evidence accumulates (time-decayed, half-life
  configurable) and the visitor's distribution is ``softmax(log b(c) + sum_t e_t(c))`` — a
  per-visitor Bayesian update, exact when events are independent given the persona.
* ``p(c | x_t)`` blends two sources in log space with ``alpha = n / (n + prior_strength)``
  (``n`` = labels learned): the catalog's linking rules (softmax of matched rule weights)
  and a river ``SoftmaxRegression`` on one-hot features learned from labelled visitors.
  With no labels the rules decide; as labels accumulate the data decides. The base rate
  blends uniform with the label frequencies the same way.
* A visitor with a label of weight w shows ``w * onehot + (1 - w) * posterior``.

State is a JSON-serialisable dict; the mapper is pure (no I/O) and snapshots to bytes.
"""

from __future__ import annotations

import math
import pickle
from datetime import datetime
from typing import Any

from river import linear_model, optim

from models.catalog import PHASES, Catalog
from models.enrich import enrich
from models.errors import UnknownPersonaError
from models.metrics import ProgressiveMetrics
from models.rules import RulePrior, next_phase

STATE_FORMAT = 1
SNAPSHOT_FORMAT = 1
RECENT_EVENTS = 20
# Features that describe the visitor rather than the event: their evidence counts once,
# not once per event (counting them per event would make visitors overconfident).
VISITOR_FEATURES = frozenset({"device", "os", "browser", "country", "region", "hour", "day"})
EVIDENCE_SPAN = 25.0  # cap on max-min accumulated evidence: keeps probabilities finite
EPS = 1e-6


def _ts_seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


class PersonaMapper:
    def __init__(
        self,
        catalog: Catalog,
        half_life_s: float = 7 * 24 * 3600.0,
        prior_strength: float = 100.0,
        learning_rate: float = 0.1,
    ) -> None:
        self.catalog = catalog
        self.personas = catalog.persona_ids
        self.half_life_s = half_life_s
        self.prior_strength = prior_strength
        self.rules = RulePrior(catalog)
        self.model = linear_model.SoftmaxRegression(optimizer=optim.AdaGrad(learning_rate))
        self.label_counts = dict.fromkeys(self.personas, 0.0)
        self.n_labels = 0
        self.version = 0
        self.validation = ProgressiveMetrics()
        self._uniform = math.log(1.0 / len(self.personas))

    # -- state ----------------------------------------------------------------------------
    def new_state(self) -> dict[str, Any]:
        return {
            "v": STATE_FORMAT,
            "evidence": dict.fromkeys(self.personas, 0.0),
            "ts": None,
            "phase": PHASES[0],
            "recent": [],
            "seen": [],
            "profile": {},
            "n": 0,
            "label": None,
        }

    def observe(
        self, state: dict[str, Any], event: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fold one native event into a visitor state; return the new state and the scores."""
        features = enrich(event, self.catalog)
        seen = state["seen"]
        fresh = {
            k: v for k, v in features.items() if k not in VISITOR_FEATURES or f"{k}={v}" not in seen
        }
        new = dict(state)
        now = _ts_seconds(event["ts"])
        factor = self._decay(state.get("ts"), now)
        evidence = {p: state["evidence"].get(p, 0.0) * factor for p in self.personas}
        for p, e in zip(self.personas, self.event_evidence(fresh), strict=True):
            evidence[p] += e
        low = max(evidence.values()) - EVIDENCE_SPAN
        new["evidence"] = {p: round(max(v, low), 5) for p, v in evidence.items()}
        new["ts"] = max(now, state["ts"] or now)
        new["phase"] = next_phase(self.catalog, state["phase"], features)
        tokens = [f"{k}={v}" for k, v in features.items()]
        new_static = [f"{k}={v}" for k, v in fresh.items() if k in VISITOR_FEATURES]
        if new_static:
            new["seen"] = [*seen, *new_static]
        new["recent"] = [*state["recent"], [f"{k}={v}" for k, v in fresh.items()]][-RECENT_EVENTS:]
        profile = {
            t: round(w * factor, 4) for t, w in state["profile"].items() if w * factor > 0.01
        }
        for t in tokens:
            profile[t] = profile.get(t, 0.0) + 1.0
        new["profile"] = profile
        new["n"] = state["n"] + 1
        if event["type"] == "label" and event.get("persona") in self.label_counts:
            new["label"] = {"persona": event["persona"], "weight": float(event.get("weight", 1.0))}
        personas = self.score(new)
        top = max(personas, key=lambda p: personas[p])
        out = {
            "personas": personas,
            "top": {"persona": top, "probability": personas[top]},
            "phase": new["phase"],
            "features": features,
        }
        return new, out

    def _decay(self, last: float | None, now: float) -> float:
        if last is None or now <= last:
            return 1.0
        return float(0.5 ** ((now - last) / self.half_life_s))

    # -- scoring --------------------------------------------------------------------------
    @property
    def alpha(self) -> float:
        return self.n_labels / (self.n_labels + self.prior_strength)

    def _log_base(self) -> list[float]:
        a = self.alpha
        if a == 0.0:
            return [self._uniform] * len(self.personas)
        total = sum(self.label_counts.values()) + len(self.personas)
        k = len(self.personas)
        return [
            math.log((1 - a) / k + a * (self.label_counts[p] + 1.0) / total) for p in self.personas
        ]

    def event_evidence(self, features: dict[str, str]) -> list[float]:
        """log p(c | x) - log b(c) for one event's features, rules and model blended."""
        rules = [lp - self._uniform for lp in self.rules.log_proba(features)]
        a = self.alpha
        if a == 0.0:
            return rules
        proba = self.model.predict_proba_one({f"{k}={v}": 1.0 for k, v in features.items()})
        if not proba:
            return rules
        total = sum(proba.get(p, 0.0) + EPS for p in self.personas)
        base = self._log_base()
        learned = [
            math.log((proba.get(p, 0.0) + EPS) / total) - b
            for p, b in zip(self.personas, base, strict=True)
        ]
        return [(1 - a) * r + a * m for r, m in zip(rules, learned, strict=True)]

    def score(self, state: dict[str, Any], *, use_label: bool = True) -> dict[str, float]:
        logits = [
            b + state["evidence"].get(p, 0.0)
            for p, b in zip(self.personas, self._log_base(), strict=True)
        ]
        probs = _softmax(logits)
        label = state.get("label") if use_label else None
        if label and label["persona"] in self.label_counts:
            w = label["weight"]
            probs = [
                (1 - w) * q + (w if p == label["persona"] else 0.0)
                for p, q in zip(self.personas, probs, strict=True)
            ]
        total = sum(probs)
        return {p: q / total for p, q in zip(self.personas, probs, strict=True)}

    # -- learning -------------------------------------------------------------------------
    def check_persona(self, persona: str) -> None:
        if persona not in self.label_counts:
            raise UnknownPersonaError(persona, self.personas)

    def learn(self, state: dict[str, Any], persona: str, weight: float = 1.0) -> dict[str, Any]:
        """Learn from a labelled visitor: predict first (progressive validation), then train."""
        self.check_persona(persona)
        info = self.validation.update(self.score(state, use_label=False), persona)
        for tokens in state.get("recent", []):
            self.model.learn_one(dict.fromkeys(tokens, 1.0), persona)
        self.label_counts[persona] += weight
        self.n_labels += 1
        return info

    def merge_states(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """One person seen as two visitors: evidence adds up, the furthest phase wins."""
        ts_a, ts_b = a.get("ts"), b.get("ts")
        now = max(t for t in (ts_a, ts_b, 0.0) if t is not None)
        fa, fb = self._decay(ts_a, now), self._decay(ts_b, now)
        evidence = {
            p: round(a["evidence"].get(p, 0.0) * fa + b["evidence"].get(p, 0.0) * fb, 5)
            for p in self.personas
        }
        profile = {t: w * fa for t, w in a["profile"].items()}
        for t, w in b["profile"].items():
            profile[t] = round(profile.get(t, 0.0) + w * fb, 4)
        labels = [x for x in (a.get("label"), b.get("label")) if x]
        return {
            "v": STATE_FORMAT,
            "evidence": evidence,
            "ts": now or None,
            "phase": max(a["phase"], b["phase"], key=PHASES.index),
            "recent": (a["recent"] + b["recent"])[-RECENT_EVENTS:],
            "seen": sorted(set(a["seen"]) | set(b["seen"])),
            "profile": profile,
            "n": a["n"] + b["n"],
            "label": max(labels, key=lambda x: x["weight"]) if labels else None,
        }

    # -- lifecycle ------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        return {**self.validation.summary(), "version": self.version, "alpha": self.alpha}

    def snapshot(self) -> bytes:
        return pickle.dumps(
            {
                "format": SNAPSHOT_FORMAT,
                "version": self.version,
                "personas": self.personas,
                "half_life_s": self.half_life_s,
                "prior_strength": self.prior_strength,
                "model": self.model,
                "label_counts": self.label_counts,
                "n_labels": self.n_labels,
                "validation": self.validation,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def from_snapshot(cls, data: bytes, catalog: Catalog) -> PersonaMapper:
        """Rebuild a mapper (hot swap). Snapshots come only from our own trainer's topic."""
        doc = pickle.loads(data)  # trusted: our own trainer writes this topic
        if doc.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported snapshot format {doc.get('format')!r}")
        if doc["personas"] != catalog.persona_ids:
            raise ValueError("snapshot was trained on a different persona catalog")
        mapper = cls(catalog, half_life_s=doc["half_life_s"], prior_strength=doc["prior_strength"])
        mapper.model = doc["model"]
        mapper.label_counts = doc["label_counts"]
        mapper.n_labels = doc["n_labels"]
        mapper.version = doc["version"]
        mapper.validation = doc["validation"]
        return mapper
