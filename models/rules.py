"""Catalog rules applied to enriched features: linking-rule scores and journey phases."""

from __future__ import annotations

import math
from collections.abc import Mapping

from models.catalog import PHASES, Catalog, Condition


def matches(when: Condition, features: Mapping[str, str]) -> bool:
    return all(features.get(feature) in values for feature, values in when.items())


class RulePrior:
    """p_rules(persona | event) = softmax of the summed weights of the linking rules that match."""

    def __init__(self, catalog: Catalog) -> None:
        self.personas = catalog.persona_ids
        self._index = {p: i for i, p in enumerate(self.personas)}
        # Index rules by (feature, value) for speed: most events match only a few rules.
        self._by_feature: dict[tuple[str, str], list[tuple[int, float, Condition]]] = {}
        for rule in catalog.linking_rules:
            first = next(iter(rule.when))
            for value in rule.when[first]:
                self._by_feature.setdefault((first, value), []).append(
                    (self._index[rule.persona], rule.weight, rule.when)
                )

    def scores(self, features: Mapping[str, str]) -> list[float]:
        scores = [0.0] * len(self.personas)
        for item in features.items():
            for i, weight, when in self._by_feature.get(item, ()):
                if len(when) == 1 or matches(when, features):
                    scores[i] += weight
        return scores

    def log_proba(self, features: Mapping[str, str]) -> list[float]:
        scores = self.scores(features)
        top = max(scores)
        log_z = top + math.log(sum(math.exp(s - top) for s in scores))
        return [s - log_z for s in scores]


def next_phase(catalog: Catalog, current: str, features: Mapping[str, str]) -> str:
    """The furthest phase reached: phases only move forward (retention only after purchase)."""
    rank = PHASES.index(current)
    for rule in catalog.journey:
        target = PHASES.index(rule.phase)
        if target <= rank:
            continue
        if rule.after is not None and rank < PHASES.index(rule.after):
            continue
        if matches(rule.when, features):
            rank = target
    return PHASES[rank]


class JourneyRules:
    """:func:`next_phase` with the rules indexed by their first condition: same answers."""

    def __init__(self, catalog: Catalog) -> None:
        self._by_item: dict[tuple[str, str], list[tuple[int, int, int, Condition]]] = {}
        for order, r in enumerate(catalog.journey):
            target = PHASES.index(r.phase)
            after = -1 if r.after is None else PHASES.index(r.after)
            first = next(iter(r.when))
            for value in r.when[first]:
                self._by_item.setdefault((first, value), []).append((order, target, after, r.when))
        self._names = sorted({name for name, _ in self._by_item})

    def next(self, current: str, features: Mapping[str, str]) -> str:
        rank = PHASES.index(current) if current in PHASES else 0
        by_item = self._by_item
        candidates = [
            rule
            for name in self._names
            if name in features
            for rule in by_item.get((name, features[name]), ())
        ]
        if len(candidates) > 1:
            candidates.sort(key=lambda rule: rule[0])
        for _, target, after, when in candidates:
            if target > rank and rank >= after and (len(when) == 1 or matches(when, features)):
                rank = target
        return PHASES[rank]
