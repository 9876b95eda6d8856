"""PersonaMapper: one visitor's events -> probabilities over every catalog persona.

How rules and labels combine (details in docs/MODELLING.md and ``models.evidence``):

* Each event x_t gives evidence for persona c: ``e_t(c) = log p(c | x_t) - log b(c)``,
  where ``p(c | x_t)`` blends the catalog's linking rules with a river model learned from
  labels (``alpha = n / (n + prior_strength)``) and ``b`` is the base rate.
* A visitor's evidence accumulates, time-decayed with a configurable half-life, and the
  visitor's distribution is ``softmax(log b(c) + sum_t e_t(c))`` — a per-visitor Bayesian
  update, exact when events are independent given the persona. Visitor-level features
  (device, OS, browser, country, region, hour, weekday) count once per visitor, not once
  per event, so a long visit does not become overconfident about its device.
* A visitor with a label of weight w shows ``w * onehot(label) + (1 - w) * posterior``.

State is a JSON-serialisable dict (str/int/float/list/dict/None); the mapper is pure
(no I/O) and snapshots to bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from models import snapshot
from models.catalog import PHASES, Catalog
from models.enrich import enrich
from models.errors import UnknownPersonaError
from models.evidence import EvidenceModel
from models.metrics import ProgressiveMetrics
from models.rules import JourneyRules

STATE_FORMAT = 2
SNAPSHOT_FORMAT = 3
RECENT_EVENTS = 20
VISITOR_FEATURES = frozenset({"device", "os", "browser", "country", "region", "hour", "day"})
NO_EVIDENCE_TYPES = frozenset({"label"})  # the answer itself is not evidence
EVIDENCE_SPAN = 25.0  # cap on max-min accumulated evidence: keeps probabilities finite
PROFILE_RESCALE = 20.0  # half-lives before the lazily decayed profile is renormalised
PROFILE_MIN = 0.01


def _ts_seconds(ts: Any) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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
        if not half_life_s > 0:
            raise ValueError("half_life_s must be > 0")
        if not (prior_strength > 0 and learning_rate > 0):
            raise ValueError("prior_strength and learning_rate must be > 0")
        self.catalog = catalog
        self.personas = catalog.persona_ids
        self.half_life_s = float(half_life_s)
        self.evidence = EvidenceModel(catalog, prior_strength, learning_rate)
        self.version = 0
        self.validation = ProgressiveMetrics(self.personas)
        self.journey = JourneyRules(catalog)

    @property
    def n_labels(self) -> int:
        return self.evidence.n_labels

    @property
    def alpha(self) -> float:
        return self.evidence.alpha

    # -- state ----------------------------------------------------------------------------
    def new_state(self) -> dict[str, Any]:
        return {
            "v": STATE_FORMAT,
            "evidence": dict.fromkeys(self.personas, 0.0),
            "ts": None,
            "phase": PHASES[0],
            "seen": [],
            "recent": [],
            "profile": {},
            "p0": None,
            "n": 0,
            "label": None,
        }

    def observe(
        self, state: dict[str, Any], event: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fold one native event into a visitor state; return the new state and the scores.

        The input state is not modified. An event without a usable ``ts`` is taken to
        happen at the visitor's last event time.
        """
        new, features = self._step(state, event)
        personas = self._distribution(new["evidence"], new.get("label"))
        top = max(personas, key=personas.__getitem__)
        return new, {
            "personas": personas,
            "top": {"persona": top, "probability": personas[top]},
            "phase": new["phase"],
            "features": features,
        }

    def observe_many(
        self, state: dict[str, Any], events: Iterable[dict[str, Any]]
    ) -> dict[str, Any]:
        """Fold several events into a state: repeated :meth:`observe` without the scores."""
        for event in events:
            state, _ = self._step(state, event)
        return state

    def _step(
        self, state: dict[str, Any], event: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        features = enrich(event, self.catalog)
        new = dict(state)
        last = state.get("ts")
        now = _ts_seconds(event.get("ts"))
        now = now if now is not None else last  # no usable ts: at the last event's time
        new["n"] = state.get("n", 0) + 1
        new["phase"] = self.journey.next(state.get("phase", PHASES[0]), features)
        if event.get("type") == "label":
            persona = event.get("persona")
            if persona in self.evidence.label_counts:
                weight = event.get("weight", 1.0)
                weight = float(weight) if isinstance(weight, int | float) else 1.0
                new["label"] = {"persona": persona, "weight": min(max(weight, 0.0), 1.0)}
        else:
            self._fold(state, new, features, last, now)
        return new, features

    def _fold(
        self,
        state: dict[str, Any],
        new: dict[str, Any],
        features: dict[str, str],
        last: float | None,
        now: float | None,
    ) -> None:
        seen = state.get("seen", [])
        tokens = {k: f"{k}={v}" for k, v in features.items()}
        fresh = {
            k: v for k, v in features.items() if k not in VISITOR_FEATURES or tokens[k] not in seen
        }
        # Decay old evidence to `now`; an out-of-order (older) event is discounted instead.
        old_factor = self._decay(last, now)
        new_factor = self._decay(now, last)
        old = state.get("evidence", {})
        event_ev = self.evidence.evidence(tuple(fresh.items()))
        evidence = [
            old.get(p, 0.0) * old_factor + e * new_factor
            for p, e in zip(self.personas, event_ev, strict=True)
        ]
        low = max(evidence) - EVIDENCE_SPAN
        new["evidence"] = {
            p: (v if v > low else low) for p, v in zip(self.personas, evidence, strict=True)
        }
        new["ts"] = last if now is None else now if last is None else max(now, last)
        visitor_tokens = [tokens[k] for k in fresh if k in VISITOR_FEATURES]
        if visitor_tokens:
            new["seen"] = [*seen, *visitor_tokens]
        new["recent"] = [*state.get("recent", []), [tokens[k] for k in fresh]][-RECENT_EVENTS:]
        self._profile_add(state, new, tokens.values(), now)

    def _profile_add(
        self,
        state: dict[str, Any],
        new: dict[str, Any],
        tokens: Iterable[str],
        now: float | None,
    ) -> None:
        """Decayed token counts, stored scaled to time ``p0`` so an event costs O(its tokens)."""
        p0 = state.get("p0")
        profile = dict(state.get("profile", {}))
        if p0 is None:
            p0 = now
        exponent = (now - p0) / self.half_life_s if now is not None and p0 is not None else 0.0
        if exponent > PROFILE_RESCALE:
            shrink = 0.5**exponent
            profile = {t: w * shrink for t, w in profile.items() if w * shrink >= PROFILE_MIN}
            p0, exponent = now, 0.0
        gain = 2.0**exponent
        for t in tokens:
            profile[t] = profile.get(t, 0.0) + gain
        new["profile"], new["p0"] = profile, p0

    def profile(self, state: dict[str, Any]) -> dict[str, float]:
        """The visitor's decayed token counts as of its last event (for discovery)."""
        p0, ts = state.get("p0"), state.get("ts")
        if p0 is None or ts is None:
            return dict(state.get("profile", {}))
        scale = 0.5 ** ((ts - p0) / self.half_life_s)
        return {t: w * scale for t, w in state.get("profile", {}).items()}

    def _decay(self, last: float | None, now: float | None) -> float:
        if last is None or now is None or now <= last:
            return 1.0
        return float(0.5 ** ((now - last) / self.half_life_s))

    # -- scoring --------------------------------------------------------------------------
    def score(self, state: dict[str, Any], *, use_label: bool = True) -> dict[str, float]:
        """Current distribution over every persona (sums to 1) for a visitor state."""
        raw = state.get("evidence")
        raw = raw if isinstance(raw, dict) else {}
        evidence = {}
        for p in self.personas:
            e = raw.get(p, 0.0)
            evidence[p] = float(e) if isinstance(e, float | int) and math.isfinite(e) else 0.0
        label = state.get("label") if use_label else None
        return self._distribution(evidence, label if isinstance(label, dict) else None)

    def _distribution(
        self, evidence: dict[str, float], label: dict[str, Any] | None
    ) -> dict[str, float]:
        logits = [
            b + evidence.get(p, 0.0)
            for p, b in zip(self.personas, self.evidence.log_base(), strict=True)
        ]
        probs = _softmax(logits)
        if label and label.get("persona") in self.evidence.label_counts:
            w = label.get("weight", 1.0)
            w = min(max(float(w), 0.0), 1.0) if isinstance(w, float | int) else 1.0
            probs = [
                (1 - w) * q + (w if p == label["persona"] else 0.0)
                for p, q in zip(self.personas, probs, strict=True)
            ]
            total = sum(probs)
            probs = [q / total for q in probs]
        return dict(zip(self.personas, probs, strict=True))

    # -- learning -------------------------------------------------------------------------
    def check_persona(self, persona: str) -> None:
        if persona not in self.evidence.label_counts:
            raise UnknownPersonaError(persona, self.personas)

    def learn(self, state: dict[str, Any], persona: str, weight: float = 1.0) -> dict[str, Any]:
        """Learn from a labelled visitor: predict first (progressive validation), then train.

        ``weight`` (0, 1] scales how much the label counts towards the base rate and alpha.
        """
        self.check_persona(persona)
        if not (isinstance(weight, int | float) and 0.0 < weight <= 1.0):
            raise ValueError(f"label weight must be in (0, 1], got {weight!r}")
        info = self.validation.update(self.score(state, use_label=False), persona)
        self.evidence.learn(state.get("recent", []), persona, float(weight))
        return info

    def merge_states(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """One person seen as two visitors: evidence adds up, the furthest phase wins."""
        ts_a, ts_b = a.get("ts"), b.get("ts")
        times = [t for t in (ts_a, ts_b) if t is not None]
        now = max(times) if times else None
        fa = self._decay(ts_a, now) if now is not None else 1.0
        fb = self._decay(ts_b, now) if now is not None else 1.0
        ea, eb = a.get("evidence", {}), b.get("evidence", {})
        evidence = {p: ea.get(p, 0.0) * fa + eb.get(p, 0.0) * fb for p in self.personas}
        low = max(evidence.values()) - EVIDENCE_SPAN
        profile: dict[str, float] = {}
        for s in (a, b):
            for t, w in self.profile(s).items():
                profile[t] = profile.get(t, 0.0) + w * self._decay(s.get("ts"), now)
        labels = [x for x in (a.get("label"), b.get("label")) if x]
        first, second = (a, b) if (ts_a or 0.0) <= (ts_b or 0.0) else (b, a)
        seen = list(dict.fromkeys([*a.get("seen", []), *b.get("seen", [])]))
        return {
            "v": STATE_FORMAT,
            "evidence": {p: round(max(v, low), 6) for p, v in evidence.items()},
            "ts": now,
            "phase": max(a.get("phase", PHASES[0]), b.get("phase", PHASES[0]), key=PHASES.index),
            "seen": seen,
            "recent": (first.get("recent", []) + second.get("recent", []))[-RECENT_EVENTS:],
            "profile": profile,
            "p0": now,
            "n": a.get("n", 0) + b.get("n", 0),
            "label": max(labels, key=lambda x: x["weight"]) if labels else None,
        }

    # -- lifecycle ------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        return {
            **self.validation.summary(),
            "version": self.version,
            "alpha": self.alpha,
            "labels_learned": self.n_labels,
        }

    def snapshot(self) -> bytes:
        """The learned model as bytes: compressed JSON (see ``models.snapshot``), never code."""
        return snapshot.encode(
            {
                "format": SNAPSHOT_FORMAT,
                "version": self.version,
                "personas": self.personas,
                "half_life_s": self.half_life_s,
                "evidence": self.evidence.to_dict(),
                "validation": self.validation.to_dict(),
            }
        )

    @classmethod
    def from_snapshot(cls, data: bytes, catalog: Catalog) -> PersonaMapper:
        """Rebuild a mapper from :meth:`snapshot` bytes (hot swap: build, then replace).

        Raises ``ValueError`` (``models.snapshot.SnapshotError``) for anything else, including
        a snapshot trained on a different persona catalog.
        """
        doc = snapshot.decode(data)
        if doc.get("format") != SNAPSHOT_FORMAT:
            raise snapshot.SnapshotError(f"unsupported snapshot format {doc.get('format')!r}")
        if doc.get("personas") != catalog.persona_ids:
            raise snapshot.SnapshotError("snapshot was trained on a different persona catalog")
        version, half_life = doc.get("version"), doc.get("half_life_s")
        if not isinstance(version, int) or version < 0:
            raise snapshot.SnapshotError("snapshot version must be an integer >= 0")
        if not isinstance(half_life, int | float) or not half_life > 0:
            raise snapshot.SnapshotError("snapshot half_life_s must be > 0")
        mapper = cls(catalog, half_life_s=float(half_life))
        mapper.evidence = EvidenceModel.from_dict(doc.get("evidence"), catalog)
        mapper.validation = ProgressiveMetrics.from_dict(doc.get("validation"), mapper.personas)
        mapper.version = version
        return mapper
