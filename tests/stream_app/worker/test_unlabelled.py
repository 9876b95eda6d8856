"""The worker's side of learning from unlabelled visitors: soft examples go to the training
topic within a budget, a label's example takes them back, the trainer applies both."""

from __future__ import annotations

from typing import Any

import orjson

from models.catalog import Catalog
from models.evaluation import train
from models.worlds import World
from stream_app.settings import DEFAULT_CATALOG
from stream_app.worker.model_holder import ModelHolder
from stream_app.worker.pipeline import Pipeline, RawMessage
from stream_app.worker.trainer import Trainer
from stream_app.worker.unlabelled import UnlabelledLearning
from stream_app.worker.visitor_state import VisitorState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def trained_holder(catalog: Catalog) -> ModelHolder:
    holder = ModelHolder(catalog, 7 * 24 * 3600.0)
    train(holder.mapper, World(catalog, seed=41).visitors(60))
    return holder


def long_visitor(catalog: Catalog, labelled: bool) -> list[dict[str, Any]]:
    world = World(catalog, seed=42, labelled_fraction=1.0 if labelled else 0.0)
    return next(v.events for v in world.visitors(500) if len(v.events) >= 17)[:17]


def run(pipeline: Pipeline, events: list[dict[str, Any]]) -> tuple[Any, dict[str, VisitorState]]:
    states: dict[str, VisitorState] = {}
    training = []
    for i, event in enumerate(events):  # one batch per event, as a slow visitor's would be
        msg = RawMessage(event["visitor_id"].encode(), orjson.dumps(event), offset=i)
        result = pipeline.process([msg], states.get)
        states.update(result.states)
        training.extend(result.training)
    return training, states


def test_an_unlabelled_visitor_sends_soft_examples_at_4_8_16_events() -> None:
    catalog = Catalog.load(DEFAULT_CATALOG)
    holder = trained_holder(catalog)
    pipeline = Pipeline(holder, unlabelled=UnlabelledLearning(1.0, 50, 100.0, clock=Clock()))
    events = long_visitor(catalog, labelled=False)
    training, states = run(pipeline, events)
    assert [ex["event_id"] for ex in training] == [
        "soft:" + events[n - 1]["event_id"] for n in (4, 8, 16)
    ]
    trainer = Trainer(holder, every_labels=50, every_s=10.0)
    trainer.learn(training)
    trainer.learn(training)  # a replayed batch's examples are learned once
    assert trainer.soft_learned == 3 and trainer.duplicates == 3 and trainer.pending == 0
    assert trainer.mapper is not None and trainer.mapper.model.soft_weight > 0.9
    assert "s" in states[events[0]["visitor_id"]].model


def test_a_label_example_carries_the_soft_contribution_back_once() -> None:
    catalog = Catalog.load(DEFAULT_CATALOG)
    holder = trained_holder(catalog)
    pipeline = Pipeline(holder, unlabelled=UnlabelledLearning(1.0, 50, 100.0, clock=Clock()))
    events = long_visitor(catalog, labelled=False)[:9]
    label = {
        "event_id": "label-1",
        "visitor_id": events[0]["visitor_id"],
        "type": "label",
        "persona": catalog.persona_ids[0],
        "source": "survey",
        "ts": events[-1]["ts"],
    }
    training, states = run(pipeline, [*events, label])
    soft, labels = training[:-1], training[-1:]
    assert len(soft) == 2 and labels[0]["event_id"] == "label-1"
    assert labels[0]["state"]["s"]["w"] == soft[-1]["soft"]["w"]
    assert "s" not in states[label["visitor_id"]].model  # taken back by this label only
    trainer = Trainer(holder, every_labels=50, every_s=10.0)
    trainer.learn(training)
    assert trainer.mapper is not None
    assert abs(trainer.mapper.model.soft_weight) < 1e-6
    assert trainer.pending == 1 and trainer.soft_learned == 2


def test_off_without_labels_or_at_weight_zero() -> None:
    catalog = Catalog.load(DEFAULT_CATALOG)
    events = long_visitor(catalog, labelled=False)
    untrained = Pipeline(
        ModelHolder(catalog, 7 * 24 * 3600.0), unlabelled=UnlabelledLearning(1.0, 50, 100.0)
    )
    assert run(untrained, events)[0] == []
    off = Pipeline(trained_holder(catalog), unlabelled=UnlabelledLearning(0.0, 50, 100.0))
    assert run(off, events)[0] == []


def test_the_budget_skips_examples_over_the_rate_and_refills() -> None:
    catalog = Catalog.load(DEFAULT_CATALOG)
    holder = trained_holder(catalog)
    clock = Clock()
    budget = UnlabelledLearning(1.0, 50, 2.0, clock=clock)
    state = holder.mapper.observe_many(holder.mapper.new_state(), long_visitor(catalog, False)[:4])
    sent = [budget.example(holder.mapper, state)[1] is not None for _ in range(4)]
    assert sent == [True, True, False, False] and budget.skipped == 2
    skipped_state, example = budget.example(holder.mapper, state)
    assert example is None and skipped_state is state  # nothing remembered when skipped
    clock.now = 1.0
    assert budget.example(holder.mapper, state)[1] is not None


def test_soft_examples_alone_publish_on_the_timer_not_per_example() -> None:
    catalog = Catalog.load(DEFAULT_CATALOG)
    holder = trained_holder(catalog)
    trainer = Trainer(holder, every_labels=1, every_s=3600.0)
    k = len(catalog.persona_ids)
    trainer.learn([{"event_id": "soft:x", "soft": {"add": {"p^1": 1}, "w": [1.0 / k] * k}}])
    assert trainer.soft_pending == 1 and not trainer.due()
    trainer.last_publish -= 3600.0
    assert trainer.due()
