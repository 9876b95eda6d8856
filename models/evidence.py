"""Per-event evidence ``log p(c | x) - log b(c)``: catalog rules blended with a river model.

* ``p_rules(c | x)``: softmax of the summed weights of the catalog linking rules that match.
* ``p_model(c | x)``: a river ``SoftmaxRegression(AdaGrad)`` on one-hot features, learned
  from the events of labelled visitors. It only knows personas it has seen labels for; the
  probability mass of never-labelled personas is taken from the rules, so a persona without
  labels is not crushed to zero.
* blend in log space with ``alpha = n / (n + prior_strength)`` (``n`` = summed label
  weights): ``log p(c | x) = (1 - alpha) log p_rules + alpha log p_model``. No labels: the
  rules decide; many labels: the data decides.
* ``b(c)``: the base rate, uniform blended with the (add-one) label frequencies by alpha.

Evidence for a feature combination is cached until the next ``learn``; a scoring worker's
mapper only changes by hot swap, so its cache stays warm (most events repeat a combination).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from river import linear_model, optim

from models.catalog import Catalog
from models.rules import RulePrior
from models.snapshot import SnapshotError, dump_softmax, load_softmax

EPS = 1e-6
CACHE_SIZE = 50_000
FeatureKey = tuple[tuple[str, str], ...]


class EvidenceModel:
    def __init__(
        self, catalog: Catalog, prior_strength: float = 100.0, learning_rate: float = 0.1
    ) -> None:
        self.personas = catalog.persona_ids
        self.prior_strength = prior_strength
        self.learning_rate = learning_rate
        self.rules = RulePrior(catalog)
        self.model = linear_model.SoftmaxRegression(optimizer=optim.AdaGrad(learning_rate))
        self.label_counts = dict.fromkeys(self.personas, 0.0)
        self.n_labels = 0
        self._uniform = -math.log(len(self.personas))
        self._cache: dict[FeatureKey, list[float]] = {}
        self._base: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prior_strength": self.prior_strength,
            "learning_rate": self.learning_rate,
            "label_counts": self.label_counts,
            "n_labels": self.n_labels,
            "model": dump_softmax(self.model),
        }

    @classmethod
    def from_dict(cls, doc: Any, catalog: Catalog) -> EvidenceModel:
        if not isinstance(doc, dict):
            raise SnapshotError("evidence must be an object")
        try:
            out = cls(catalog, float(doc["prior_strength"]), float(doc["learning_rate"]))
            counts = doc["label_counts"]
            if not isinstance(counts, dict) or set(counts) != set(out.personas):
                raise SnapshotError("label_counts must cover exactly the catalog personas")
            out.label_counts = {p: float(counts[p]) for p in out.personas}
            out.n_labels = int(doc["n_labels"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"bad evidence model in snapshot: {exc}") from None
        if not (out.prior_strength > 0 and out.learning_rate > 0 and out.n_labels >= 0):
            raise SnapshotError("bad evidence model in snapshot: non-positive parameter")
        if any(not (math.isfinite(v) and v >= 0) for v in out.label_counts.values()):
            raise SnapshotError("bad evidence model in snapshot: label counts")
        out.model = load_softmax(doc.get("model"), out.learning_rate, out.personas)
        return out

    @property
    def weight_seen(self) -> float:
        return sum(self.label_counts.values())

    @property
    def alpha(self) -> float:
        n = self.weight_seen
        return n / (n + self.prior_strength)

    def log_base(self) -> list[float]:
        if self._base is None:
            a, k = self.alpha, len(self.personas)
            total = self.weight_seen + k
            self._base = [
                math.log((1 - a) / k + a * (self.label_counts[p] + 1.0) / total)
                for p in self.personas
            ]
        return self._base

    def evidence(self, key: FeatureKey) -> list[float]:
        """``log p(c | x) - log b(c)`` for one event's features, as ``tuple(features.items())``."""
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        features = dict(key)
        rules = self.rules.log_proba(features)
        a = self.alpha
        if a > 0.0:
            learned = self._model_log_proba(features, rules)
            blended = [(1 - a) * r + a * m for r, m in zip(rules, learned, strict=True)]
        else:
            blended = rules
        out = [v - b for v, b in zip(blended, self.log_base(), strict=True)]
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = out
        return out

    def predict_proba(self, tokens: tuple[str, ...]) -> dict[str, float]:
        """``model.predict_proba_one`` for one-hot tokens, without river's generic overhead."""
        logits = {}
        for label, weights in self.model.weights.items():
            get = weights.get
            logits[label] = sum(get(t, 0.0) for t in tokens)
        if not logits:
            return {}
        top = max(logits.values())
        exps = {c: math.exp(v - top) for c, v in logits.items()}
        total = sum(exps.values())
        return {c: e / total for c, e in exps.items()}

    def _model_log_proba(self, features: dict[str, str], rules: list[float]) -> list[float]:
        proba = self.predict_proba(tuple(f"{k}={v}" for k, v in features.items()))
        if not proba:
            return rules
        pairs = zip(self.personas, rules, strict=True)
        seen_mass = sum(math.exp(r) for p, r in pairs if p in proba)
        out = []
        for p, r in zip(self.personas, rules, strict=True):
            q = proba.get(p)
            out.append(math.log(seen_mass * q + EPS) if q is not None else r)
        top = max(out)
        log_z = top + math.log(sum(math.exp(v - top) for v in out))
        return [v - log_z for v in out]

    def learn(self, events: Iterable[list[str]], persona: str, weight: float = 1.0) -> None:
        """Learn from the one-hot tokens of a labelled visitor's recent events."""
        for tokens in events:
            if tokens:
                self.model.learn_one(dict.fromkeys(tokens, 1.0), persona)
        self.label_counts[persona] += weight
        self.n_labels += 1
        self._cache.clear()
        self._base = None
