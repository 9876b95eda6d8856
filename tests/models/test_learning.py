"""Learning on simulated traffic: labels beat the rules-only prior and the uniform guess."""

from __future__ import annotations

import math

from models.catalog import Catalog
from models.evaluation import evaluate, replay, train
from models.mapper import PersonaMapper
from models.simulator import Simulator


def test_two_thousand_labels_beat_rules_and_uniform(catalog: Catalog) -> None:
    world = Simulator(catalog, seed=11, labelled_fraction=1.0)
    labelled = list(world.visitors(2000))
    held_out = list(world.visitors(600))
    rules = PersonaMapper(catalog)
    learned = PersonaMapper(catalog)
    assert train(learned, labelled) == 2000

    def score(mapper: PersonaMapper) -> dict[str, float]:
        preds = ((mapper.score(replay(mapper, v.events)), v.persona) for v in held_out)
        return evaluate(preds, catalog.persona_ids)

    r, m = score(rules), score(learned)
    k = len(catalog.persona_ids)
    uniform_acc, uniform_ll = 1 / k, math.log(k)
    assert m["accuracy"] >= r["accuracy"] + 0.10, (m["accuracy"], r["accuracy"])
    assert m["log_loss"] <= r["log_loss"] - 0.30, (m["log_loss"], r["log_loss"])
    assert m["accuracy"] >= uniform_acc + 0.50
    assert m["log_loss"] <= uniform_ll - 1.0
    assert m["ece"] <= 0.06
    # rules alone already beat the uniform guess: the catalog is informative
    assert r["accuracy"] >= uniform_acc + 0.30
    assert learned.metrics()["labels_seen"] == 2000


def test_progressive_metrics_improve_with_labels(catalog: Catalog) -> None:
    mapper = PersonaMapper(catalog)
    world = Simulator(catalog, seed=12, labelled_fraction=1.0)
    train(mapper, world.visitors(300))
    early = mapper.metrics()["accuracy"]
    train(mapper, world.visitors(1200))
    recent = mapper.metrics()["recent_accuracy"]
    assert recent > early + 0.05, (early, recent)
