"""Held-out evaluation of a mapper on simulated or labelled visitors (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from models.mapper import PersonaMapper

BINS = 10


def replay(mapper: PersonaMapper, events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A visitor's state after its events (label events left out: they would leak the answer)."""
    return mapper.observe_many(mapper.new_state(), (e for e in events if e["type"] != "label"))


def train(
    mapper: PersonaMapper,
    visitors: Iterable[Any],
    unlabelled_weight: float = 0.0,
    min_labels: int = 50,
) -> int:
    """Learn from each visitor as the engine does: a labelled one at the moment its label
    arrives and, with ``unlabelled_weight`` > 0, every visitor from its soft examples
    (:meth:`PersonaMapper.soft_example`) until its label comes. Returns the labels used."""
    n = 0
    for v in visitors:
        state = mapper.new_state()
        for event in v.events:
            if event["type"] == "label":
                mapper.learn(state, event["persona"], event.get("weight", 1.0))
                state = mapper.settled(state)
                n += 1
                continue
            state, _ = mapper.observe(state, event)
            if unlabelled_weight > 0:
                state, example = mapper.soft_example(state, unlabelled_weight, min_labels)
                if example is not None:
                    mapper.learn_soft(example)
    return n


def evaluate(
    predictions: Iterable[tuple[dict[str, float], str]], personas: list[str]
) -> dict[str, Any]:
    """Top-1 accuracy, log loss, ECE, per-persona precision/recall, the confusion matrix,
    a calibration table and the separation between personas.

    ``separation[a][b]`` = mean p(a) over visitors who are a, minus mean p(a) over visitors
    who are b: near 0 means the model cannot tell b's visitors from a's.
    """
    n = correct = 0
    loss = 0.0
    bins = [[0, 0.0, 0] for _ in range(BINS)]
    confusion = {t: dict.fromkeys(personas, 0) for t in personas}
    mass = {t: dict.fromkeys(personas, 0.0) for t in personas}
    for proba, truth in predictions:
        if truth not in confusion:
            raise ValueError(f"truth {truth!r} is not a catalog persona")
        for p in personas:
            mass[truth][p] += proba.get(p, 0.0)
        top = max(proba, key=lambda p: proba[p])
        n += 1
        correct += top == truth
        loss -= math.log(max(proba.get(truth, 0.0), 1e-12))
        b = bins[min(int(proba[top] * BINS), BINS - 1)]
        b[0] += 1
        b[1] += proba[top]
        b[2] += top == truth
        confusion[truth][top] += 1
    per_persona = {}
    for p in personas:
        tp = confusion[p][p]
        predicted = sum(confusion[t][p] for t in personas)
        actual = sum(confusion[p].values())
        per_persona[p] = {
            "precision": tp / predicted if predicted else None,
            "recall": tp / actual if actual else None,
            "support": actual,
        }
    support = {t: sum(confusion[t].values()) for t in personas}
    mean = {t: {p: mass[t][p] / support[t] for p in personas} for t in personas if support[t]}
    separation = {
        a: {b: round(mean[a][a] - mean[b][a], 4) for b in personas if b != a and b in mean}
        for a in personas
        if a in mean
    }
    calibration = [
        {
            "bin": f"{i / BINS:.1f}-{(i + 1) / BINS:.1f}",
            "n": b[0],
            "confidence": b[1] / b[0],
            "accuracy": b[2] / b[0],
        }
        for i, b in enumerate(bins)
        if b[0]
    ]
    return {
        "n": n,
        "accuracy": correct / n if n else None,
        "log_loss": loss / n if n else None,
        "ece": sum(abs(b[2] - b[1]) for b in bins) / n if n else None,
        "per_persona": per_persona,
        "confusion": confusion,
        "calibration": calibration,
        "separation": separation,
    }
