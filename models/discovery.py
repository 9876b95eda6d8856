"""Discovery: online clustering of visitor profiles, and candidate new personas.

Each visitor state is turned into its behaviour counts per feature group (page views per
page category, touchpoints, dwell buckets) and clustered online by a mixture of
multinomials (``models.mixture``: the likelihood that fits counts, so a long visit weighs
more than a short one); per cluster we keep exact running means of the token shares and of
the mapper's persona distribution. A cluster that holds enough visitors and whose members'
mean top-persona probability is low (or whose mean distribution is far from any single persona) is a
*candidate new persona*: it is reported with the tokens that distinguish it from the
whole population (lift = share in the cluster / share overall) and, when the catalog is
known, the share of its behaviour that no linking rule mentions (``uncovered_share``).
Clusters are seeded farthest-first from the data, so a run is reproducible.

Once the mapper has labels (``FIT_MIN_LABELS``), a better sign than the posterior is
available: its **fit gain** (``PersonaMapper.fit_gain``), how much better the best known
persona explains a visitor's tokens than the pooled population does. A trained model is
confident about nearly everyone, the visitors of a missing persona included, but it cannot
*fit* them: a cluster whose mean gain is under ``GAIN_RATIO`` of the average is a candidate,
and candidates are ranked by it.

One persona's visitors often fill two or three clusters (a mixture with more clusters than
personas splits the big ones); candidate clusters whose behaviour is alike (mean Hellinger
distance of their token shares per group below ``merge_distance``) are reported as one
candidate, listing its ``clusters``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from models.mixture import MultinomialMixture

Vector = dict[str, float]
# Behaviour, not identity: os/browser/country would split clusters by device, not habits.
GROUPS = frozenset({"page", "touch", "dwell"})
MERGE_DISTANCE = 0.23  # candidate clusters closer than this (mean Hellinger) are one candidate
FIT_MIN_LABELS = 100  # labels the mapper needs before its fit gain ranks candidates
GAIN_RATIO = 0.5  # a cluster explained less than half as well as the average is a candidate


def state_vector(state_or_profile: Mapping[str, Any]) -> Vector:
    """Token shares within each feature group, from a visitor state or a raw profile."""
    profile = state_or_profile.get("profile", state_or_profile)
    totals: dict[str, float] = {}
    for token, w in profile.items():
        if not isinstance(w, int | float) or "=" not in token:
            continue
        group = token.split("=", 1)[0]
        if group in GROUPS:
            totals[group] = totals.get(group, 0.0) + float(w)
    out: Vector = {}
    for token, w in profile.items():
        if not isinstance(w, int | float) or "=" not in token:
            continue
        total = totals.get(token.split("=", 1)[0], 0.0)  # 0 for groups left out
        if total > 0:
            out[token] = float(w) / total
    return out


class _Cluster:
    def __init__(self) -> None:
        self.n = 0
        self.sums: Vector = {}
        self.top_sum = 0.0
        self.uncovered_sum = 0.0
        self.scored = 0
        self.persona_sums: dict[str, float] = {}
        self.gain_sum = 0.0
        self.gained = 0

    @classmethod
    def merged(cls, parts: Iterable[_Cluster]) -> _Cluster:
        out = cls()
        for part in parts:
            out.n += part.n
            out.top_sum += part.top_sum
            out.uncovered_sum += part.uncovered_sum
            out.scored += part.scored
            out.gain_sum += part.gain_sum
            out.gained += part.gained
            for token, w in part.sums.items():
                out.sums[token] = out.sums.get(token, 0.0) + w
            for p, q in part.persona_sums.items():
                out.persona_sums[p] = out.persona_sums.get(p, 0.0) + q
        return out


def behaviour_distance(a: _Cluster, b: _Cluster) -> float:
    """Mean over feature groups of the Hellinger distance between two clusters' mean token
    shares (0: the same behaviour, 1: nothing in common)."""
    groups: dict[str, tuple[Vector, Vector]] = {}
    for side, c in enumerate((a, b)):
        for token, w in c.sums.items():
            pair = groups.setdefault(token.split("=", 1)[0], ({}, {}))
            pair[side][token] = w / c.n
    out = []
    for x, y in groups.values():
        zx, zy = sum(x.values()), sum(y.values())
        if not (zx > 0 and zy > 0):
            out.append(1.0)
            continue
        overlap = sum(math.sqrt(x[t] / zx * y[t] / zy) for t in x.keys() & y.keys())
        out.append(math.sqrt(max(0.0, 1.0 - overlap)))
    return sum(out) / len(out) if out else 1.0


class PersonaDiscovery:
    def __init__(
        self,
        n_clusters: int = 12,
        min_share: float = 0.03,
        explained_threshold: float = 0.5,
        mapper: Any = None,
        min_events: int = 5,
        seed_distance: float = 0.5,
        merge_distance: float = MERGE_DISTANCE,
    ) -> None:
        if n_clusters < 1:
            raise ValueError("n_clusters must be >= 1")
        self.mixture = MultinomialMixture(n_clusters, seed_distance=seed_distance)
        self.min_share = min_share
        self.explained_threshold = explained_threshold
        self.mapper = mapper
        self.min_events = min_events
        self.merge_distance = merge_distance
        catalog = getattr(mapper, "catalog", None)
        self.covered: set[str] | None = (
            {f"{f}={v}" for r in catalog.linking_rules for f, vs in r.when.items() for v in vs}
            if catalog is not None
            else None
        )
        self.n = 0
        self.totals: Vector = {}
        self.clusters: dict[int, _Cluster] = {}
        self.gain_sum = 0.0
        self.gained = 0

    def learn_one(self, x: Mapping[str, Any], personas: Mapping[str, float] | None = None) -> int:
        """Add one visitor (a state, or a vector from :func:`state_vector`); returns its cluster.

        States with fewer than ``min_events`` events are skipped (returns -1): their shares
        are too noisy to cluster.

        ``personas`` is the visitor's current distribution; when omitted and the discovery
        was given a mapper and ``x`` is a state, the mapper scores it.
        """
        is_state = "profile" in x or "k" in x
        if is_state and isinstance(x.get("n"), int) and x["n"] < self.min_events:
            return -1  # too few events for a stable profile
        if "k" in x and self.mapper is not None:
            raw = self.mapper.profile(x)
        elif is_state:
            raw = x.get("profile", {})
        else:
            raw = x
        vector = state_vector(raw)
        if not vector:
            return -1
        counts = {t: float(raw[t]) for t in vector}
        gain = None
        if "k" in x and self.mapper is not None and self.mapper.n_labels >= FIT_MIN_LABELS:
            gain = self.mapper.fit_gain(x)
        if personas is None and is_state and self.mapper is not None:
            personas = self.mapper.score(x)
        c = self.mixture.learn_one(counts, vector)
        stats = self.clusters.setdefault(c, _Cluster())
        stats.n += 1
        self.n += 1
        for token, w in vector.items():
            stats.sums[token] = stats.sums.get(token, 0.0) + w
            self.totals[token] = self.totals.get(token, 0.0) + w
        if self.covered is not None:
            stats.uncovered_sum += self._uncovered(vector)
        if gain is not None:
            stats.gain_sum += gain
            stats.gained += 1
            self.gain_sum += gain
            self.gained += 1
        if personas:
            stats.scored += 1
            stats.top_sum += max(personas.values())
            for p, q in personas.items():
                stats.persona_sums[p] = stats.persona_sums.get(p, 0.0) + q
        return c

    def _uncovered(self, vector: Vector) -> float:
        """Share of the behaviour that no catalog linking rule mentions (mean over groups)."""
        covered = self.covered or set()
        groups: dict[str, float] = {}
        for token, w in vector.items():
            group = token.split("=", 1)[0]
            if group != "dwell":
                groups[group] = groups.get(group, 0.0) + (0.0 if token in covered else w)
        return sum(groups.values()) / len(groups) if groups else 0.0

    def summary(self, top_features: int = 5) -> list[dict[str, Any]]:
        """Every cluster: size, share, how well the catalog explains it, distinguishing tokens."""
        return [
            self._describe(c, [c], s, top_features) for c, s in sorted(self.clusters.items()) if s.n
        ]

    def _describe(self, c: int, ids: list[int], s: _Cluster, top_features: int) -> dict[str, Any]:
        lifts = []
        for token, total in s.sums.items():
            share, overall = total / s.n, self.totals[token] / self.n
            if share >= 0.1 and overall > 0:
                lifts.append((share / overall, share, token))
        lifts.sort(reverse=True)
        mean = {p: v / s.scored for p, v in s.persona_sums.items()} if s.scored else {}
        closest = max(mean, key=mean.__getitem__) if mean else None
        return {
            "cluster": c,
            "clusters": ids,
            "size": s.n,
            "share": s.n / self.n,
            "mean_top_probability": s.top_sum / s.scored if s.scored else None,
            "closest_persona": closest,
            "closest_persona_mean_probability": mean[closest] if closest else None,
            "uncovered_share": s.uncovered_sum / s.n if self.covered is not None else None,
            # mean fit gain relative to all visitors' (1: as well explained as the average)
            "relative_fit": (
                (s.gain_sum / s.gained) / (self.gain_sum / self.gained)
                if s.gained and self.gain_sum > 0
                else None
            ),
            "distinguishing": [
                {"feature": t, "share": round(sh, 3), "lift": round(li, 2)}
                for li, sh, t in lifts[:top_features]
            ],
        }

    def candidates(self, top_features: int = 5) -> list[dict[str, Any]]:
        """Clusters big enough that no catalog persona explains well: candidate new personas.

        Ordered by ``uncovered_share`` (behaviour no linking rule mentions) when the
        discovery knows the catalog, else by how little members agree on one persona.
        Flagged clusters of alike behaviour (``merge_distance``) are one candidate: the
        best-ranked one gathers the others, and ``clusters`` lists them all.
        """

        fitted = self.gained > 0 and self.gain_sum > 0

        def rank(c: dict[str, Any]) -> tuple[float, float, float]:
            fit = c["relative_fit"] if fitted and c["relative_fit"] is not None else 1.0
            return (fit, -(c["uncovered_share"] or 0.0), c["closest_persona_mean_probability"])

        def unexplained(c: dict[str, Any]) -> bool:
            if fitted and c["relative_fit"] is not None:
                return bool(c["relative_fit"] < GAIN_RATIO)
            p = c["closest_persona_mean_probability"]
            return p is not None and p < self.explained_threshold

        flagged = sorted(
            (
                c
                for c in self.summary(top_features)
                if c["share"] >= self.min_share
                and c["closest_persona_mean_probability"] is not None
                and unexplained(c)
            ),
            key=rank,
        )
        taken: set[int] = set()
        out = []
        for lead in flagged:
            first = lead["cluster"]
            if first in taken:
                continue
            ids = [first] + [
                c["cluster"]
                for c in flagged
                if c["cluster"] not in taken
                and c["cluster"] != first
                and behaviour_distance(self.clusters[first], self.clusters[c["cluster"]])
                < self.merge_distance
            ]
            taken.update(ids)
            if len(ids) == 1:
                out.append(lead)
            else:
                merged = _Cluster.merged(self.clusters[i] for i in ids)
                out.append(self._describe(first, ids, merged, top_features))
        return sorted(out, key=rank)
