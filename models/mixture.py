"""Online mixture of multinomials: clusters of visitors by their behaviour counts.

Each cluster ``k`` has, per feature group (``page``, ``touch``, ``dwell``), token counts;
a visitor's counts ``x`` have log-likelihood

    log pi_k + sum_t x_t log P_k(t),   P_k(t) = (n_k(t) + alpha b(t)) / (N_k(group) + alpha)

with ``b`` the pooled frequency of the token in its group. A visitor is assigned to the
most likely cluster and its counts are added to every cluster in proportion to the
posterior responsibility (online EM). This is the generative model that fits count data:
unlike k-means on share vectors, a visitor with 3 events weighs less than one with 30, and
rare tokens that only one group uses carry their real weight. Clusters are seeded from the
data, farthest-first on share vectors, so a run is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Vector = dict[str, float]


def _group(token: str) -> str:
    return token.split("=", 1)[0]


class MultinomialMixture:
    def __init__(self, n_clusters: int, alpha: float = 2.0, seed_distance: float = 0.5) -> None:
        self.n_clusters = n_clusters
        self.alpha = alpha
        self.seed_distance = seed_distance
        self.counts: list[Vector] = []
        self.group_totals: list[Vector] = []
        self.mass: list[float] = []
        self.seeds: list[Vector] = []
        self.pooled: Vector = {}
        self.pooled_groups: Vector = {}
        self.vocab: dict[str, set[str]] = {}

    def _add(self, k: int, x: Mapping[str, float], r: float) -> None:
        counts, totals = self.counts[k], self.group_totals[k]
        for t, n in x.items():
            counts[t] = counts.get(t, 0.0) + r * n
            g = _group(t)
            totals[g] = totals.get(g, 0.0) + r * n
        self.mass[k] += r

    def _try_seed(self, x: Mapping[str, float], shares: Mapping[str, float]) -> int | None:
        if len(self.seeds) >= self.n_clusters:
            return None
        for s in self.seeds:
            keys = {*s, *shares}
            if sum((s.get(k, 0.0) - shares.get(k, 0.0)) ** 2 for k in keys) < self.seed_distance:
                return None
        self.seeds.append(dict(shares))
        self.counts.append({})
        self.group_totals.append({})
        self.mass.append(0.0)
        k = len(self.counts) - 1
        self._add(k, x, 1.0)
        return k

    def log_likelihoods(self, x: Mapping[str, float]) -> list[float]:
        total_mass = sum(self.mass) + len(self.mass)
        out = []
        for k in range(len(self.counts)):
            counts, totals = self.counts[k], self.group_totals[k]
            ll = math.log((self.mass[k] + 1.0) / total_mass)
            for t, n in x.items():
                g = _group(t)
                vocab = len(self.vocab.get(g, ())) + 1
                b = (self.pooled.get(t, 0.0) + 0.5) / (self.pooled_groups.get(g, 0.0) + 0.5 * vocab)
                p = (counts.get(t, 0.0) + self.alpha * b) / (totals.get(g, 0.0) + self.alpha)
                ll += n * math.log(p)
            out.append(ll)
        return out

    def learn_one(self, x: Mapping[str, float], shares: Mapping[str, float]) -> int:
        """Add one visitor's counts ``x`` (and its share vector, for seeding); its cluster."""
        for t, n in x.items():
            g = _group(t)
            self.pooled[t] = self.pooled.get(t, 0.0) + n
            self.pooled_groups[g] = self.pooled_groups.get(g, 0.0) + n
            self.vocab.setdefault(g, set()).add(t)
        seeded = self._try_seed(x, shares)
        if seeded is not None:
            return seeded
        ll = self.log_likelihoods(x)
        top = max(ll)
        weights = [math.exp(v - top) for v in ll]
        total = sum(weights)
        for k, w in enumerate(weights):
            if w / total > 1e-4:
                self._add(k, x, w / total)
        return max(range(len(ll)), key=ll.__getitem__)
