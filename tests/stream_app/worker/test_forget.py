"""Forgetting a visitor: events sent before the DELETE never bring the visitor back.

The forget request travels on the control topic and events on the events topic; Kafka
orders neither against the other, so an event sent just before a DELETE may be consumed
just after it. The pipeline keeps a marker with the deletion time and drops such events.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from models.catalog import Catalog
from stream_app.settings import DEFAULT_CATALOG
from stream_app.worker import visitor_state as vs
from stream_app.worker.model_holder import ModelHolder
from stream_app.worker.pipeline import BatchResult, Pipeline, RawMessage

DELETED_AT = 1_000.0


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline(ModelHolder(Catalog.load(DEFAULT_CATALOG), 7 * 24 * 3600.0))


def page_view(event_id: str, visitor: str = "v1", sent_at: float | None = None) -> RawMessage:
    doc = {
        "event_id": event_id,
        "type": "page_view",
        "visitor_id": visitor,
        "ts": "2026-11-22T10:15:00Z",
        "url": "https://acme.example/docs/api",
    }
    return RawMessage(visitor.encode(), json.dumps(doc).encode(), "t/0@1", timestamp=sent_at)


def forget(visitor: str = "v1", at: float | None = DELETED_AT) -> RawMessage:
    doc: dict[str, Any] = {"op": "forget", "visitor_id": visitor}
    if at is not None:
        doc["at"] = at
    return RawMessage(visitor.encode(), json.dumps(doc).encode(), "c/0@1", control=True)


class Table(dict[str, vs.VisitorState]):
    """The faust table as the pipeline sees it, fed with what the agent writes back."""

    def apply(self, result: BatchResult) -> BatchResult:
        self.update(result.states)
        return result


def test_event_sent_before_the_delete_is_dropped(pipeline: Pipeline) -> None:
    table = Table()
    table.apply(pipeline.process([page_view("e1", sent_at=900.0)], table.get))
    assert table["v1"].events == 1

    result = table.apply(pipeline.process([forget()], table.get))
    assert result.forgotten == ["v1"] and result.writes == []
    assert vs.is_forgotten(table["v1"]) and not table["v1"].is_visitor and table["v1"].events == 0

    late = table.apply(pipeline.process([page_view("e2", sent_at=990.0)], table.get))
    assert late.forgotten_discarded == 1 and late.processed == 0
    assert late.writes == [] and late.assignments == []
    assert vs.is_forgotten(table["v1"])


def test_event_sent_after_the_delete_starts_a_fresh_visitor(pipeline: Pipeline) -> None:
    table = Table()
    table.apply(pipeline.process([page_view("e1", sent_at=900.0), forget()], table.get))
    result = table.apply(pipeline.process([page_view("e3", sent_at=1_001.0)], table.get))
    assert result.forgotten_discarded == 0 and result.processed == 1
    assert [w.record["events"] for w in result.writes] == [1]
    assert table["v1"].events == 1 and not vs.is_forgotten(table["v1"])


def test_same_batch_forget_then_older_event(pipeline: Pipeline) -> None:
    table = Table()
    result = table.apply(
        pipeline.process(
            [page_view("e1", sent_at=900.0), forget(), page_view("e2", sent_at=950.0)], table.get
        )
    )
    assert result.forgotten == ["v1"] and result.forgotten_discarded == 1
    assert result.writes == [], "nothing of the forgotten visitor reaches Redis"


def test_forget_without_a_time_lets_every_later_message_start_fresh(pipeline: Pipeline) -> None:
    """Forget requests of an older API (no ``at``) behave as before: later events count."""
    table = Table()
    table.apply(pipeline.process([page_view("e1", sent_at=900.0), forget(at=None)], table.get))
    result = table.apply(pipeline.process([page_view("e2", sent_at=950.0)], table.get))
    assert result.processed == 1 and table["v1"].events == 1


def test_other_visitors_are_untouched(pipeline: Pipeline) -> None:
    table = Table()
    table.apply(
        pipeline.process([page_view("a", "v1", 900.0), page_view("b", "v2", 900.0)], table.get)
    )
    table.apply(pipeline.process([forget("v1")], table.get))
    result = table.apply(pipeline.process([page_view("c", "v2", 950.0)], table.get))
    assert result.processed == 1 and table["v2"].events == 2
