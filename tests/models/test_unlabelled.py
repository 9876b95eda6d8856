"""Learning from unlabelled visitors (online EM): when a visitor teaches, that its examples
replace each other and a label takes them back, and that it pays off on a world."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from models.catalog import Catalog
from models.evaluation import evaluate, replay, train
from models.mapper import PersonaMapper
from models.worlds import World


def trained(catalog: Catalog, labels: int = 60, seed: int = 21) -> PersonaMapper:
    mapper = PersonaMapper(catalog)
    assert train(mapper, World(catalog, seed=seed).visitors(labels)) == labels
    return mapper


def unlabelled_events(catalog: Catalog, seed: int = 22, min_events: int = 17) -> list[Any]:
    world = World(catalog, seed=seed, labelled_fraction=0.0)
    for v in world.visitors(500):
        if len(v.events) >= min_events:
            return v.events
    raise AssertionError("no visitor with enough events")


def counts_of(mapper: PersonaMapper) -> dict[str, list[float]]:
    return {k: [round(x, 6) for x in v] for k, v in mapper.model.counts.items() if any(v)}


def test_soft_examples_fall_due_at_4_8_16_events_and_replace_each_other(
    catalog: Catalog,
) -> None:
    mapper = trained(catalog)
    state, due = mapper.new_state(), []
    examples = []
    for event in unlabelled_events(catalog)[:16]:
        state, _ = mapper.observe(state, event)
        state, example = mapper.soft_example(state, 1.0, min_labels=50)
        if example is not None:
            due.append(state["n"])
            examples.append(example)
    assert due == [4, 8, 16]
    assert "remove" not in examples[0]
    for before, after in itertools.pairwise(examples):
        assert after["remove"] == before["add"] and after["rw"] == before["w"]
    assert examples[-1]["add"] == state["k"]
    # weights: the posterior (shares under 1% left out) times the unlabelled weight
    proba = mapper.score(state)
    assert examples[-1]["w"] == [
        round(p, 4) if p >= 0.01 else 0.0 for p in (proba[x] for x in mapper.personas)
    ]


def test_no_soft_example_before_min_labels_at_weight_zero_or_once_labelled(
    catalog: Catalog,
) -> None:
    mapper = trained(catalog, labels=10)
    state = mapper.observe_many(mapper.new_state(), unlabelled_events(catalog)[:4])
    assert mapper.soft_example(state, 1.0, min_labels=50)[1] is None
    assert mapper.soft_example(state, 1.0, min_labels=10)[1] is not None
    assert mapper.soft_example(state, 0.0, min_labels=10)[1] is None
    labelled = dict(state, label={"persona": mapper.personas[0], "weight": 1.0})
    assert mapper.soft_example(labelled, 1.0, min_labels=10)[1] is None


def test_a_replacing_example_leaves_only_the_latest_contribution(catalog: Catalog) -> None:
    base = trained(catalog)
    events = unlabelled_events(catalog)
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    state, last = a.new_state(), None
    for event in events[:8]:
        state, _ = a.observe(state, event)
        state, example = a.soft_example(state, 1.0, 50)
        if example is not None:
            a.learn_soft(example)
            last = example
    assert last is not None and "remove" in last
    b.learn_soft({"add": last["add"], "w": last["w"]})
    assert counts_of(a) == counts_of(b)
    assert a.model.soft_weight == pytest.approx(b.model.soft_weight, abs=1e-6)
    assert counts_of(a) != counts_of(base)


def test_a_label_takes_back_what_the_visitor_taught_unlabelled(catalog: Catalog) -> None:
    base = trained(catalog)
    events = unlabelled_events(catalog)[:8]
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    state = a.new_state()
    for event in events:
        state, _ = a.observe(state, event)
        state, example = a.soft_example(state, 1.0, 50)
        if example is not None:
            a.learn_soft(example)
    assert "s" in state
    persona = a.personas[1]
    a.learn(state, persona)
    assert "s" not in a.settled(state)
    b.learn(b.observe_many(b.new_state(), events), persona)
    assert counts_of(a) == counts_of(b)
    assert a.model.soft_weight == pytest.approx(0.0, abs=1e-6)


def test_malformed_soft_examples_are_refused_and_change_nothing(catalog: Catalog) -> None:
    mapper = trained(catalog)
    before = counts_of(mapper)
    k = len(mapper.personas)
    good = {"add": {"p^1": 1}, "w": [1.0 / k] * k}
    for bad in (
        None,
        {"add": {"p^1": 1}},
        {"add": {"p^1": -1}, "w": good["w"]},
        {"add": {"p^1": 1}, "w": [2.0] * k},
        {"add": {"p^1": 1}, "w": [0.5]},
        {"add": ["p^1"], "w": good["w"]},
        {**good, "remove": {"p^1": 1}, "rw": "x"},
        {**good, "remove": {"p^1": float("nan")}, "rw": good["w"]},
    ):
        with pytest.raises(ValueError):
            mapper.learn_soft(bad)
    assert counts_of(mapper) == before
    mapper.learn_soft(good)
    assert counts_of(mapper) != before


def test_merge_keeps_the_first_visitors_soft_example(mapper: PersonaMapper) -> None:
    a = dict(mapper.new_state(), k={"gDE": 1, "p^1": 2}, n=4, s={"n": [1, 1], "w": [0.2] * 5})
    b = dict(mapper.new_state(), k={"gFR": 1}, n=4, s={"n": [1], "w": [0.2] * 5})
    merged = mapper.merge_states(a, b)
    assert merged["s"] == a["s"]
    assert list(merged["k"])[:2] == list(a["k"])  # still aligned with a's counts
    plain = {key: v for key, v in a.items() if key != "s"}
    assert "s" not in mapper.merge_states(plain, b)


def test_soft_weight_survives_a_snapshot(catalog: Catalog) -> None:
    mapper = trained(catalog)
    mapper.learn_soft({"add": {"p^1": 3}, "w": [0.5, 0.5, 0.0, 0.0, 0.0]})
    again = PersonaMapper.from_snapshot(mapper.snapshot(), catalog)
    assert again.model.soft_weight == pytest.approx(1.0)
    assert counts_of(again) == counts_of(mapper)


def _ratio(catalog: Catalog, kind: str, labelled_fraction: float, weight: float) -> float:
    world = World(catalog, seed=31, kind=kind)
    test = list(world.visitors(400))
    oracle = evaluate(((v.oracle, v.persona) for v in test), catalog.persona_ids)["log_loss"]
    world.labelled_fraction = labelled_fraction
    mapper, labels = PersonaMapper(catalog), 0
    while labels < 300:
        labels += train(mapper, world.visitors(1), unlabelled_weight=weight)
    preds = ((mapper.score(replay(mapper, v.events)), v.persona) for v in test)
    return float(evaluate(preds, catalog.persona_ids)["log_loss"]) / oracle


@pytest.mark.parametrize("kind", ["sessions", "markov"])
def test_unlabelled_traffic_brings_the_model_closer_to_the_oracle(
    catalog: Catalog, kind: str
) -> None:
    labels_only = _ratio(catalog, kind, 1.0, 0.0)
    with_traffic = _ratio(catalog, kind, 0.2, 1.0)  # 4 unlabelled visitors per label
    assert with_traffic < labels_only - 0.03, (labels_only, with_traffic)
