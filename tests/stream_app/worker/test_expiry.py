"""Visitor states leave the table after PERSONA_VISITOR_TTL_S without activity, like their
Redis records; a merged visitor's marker stays while its events keep being forwarded."""

from __future__ import annotations

import json
from datetime import datetime

from models.catalog import Catalog
from stream_app.settings import DEFAULT_CATALOG
from stream_app.worker import visitor_state as vs
from stream_app.worker.expiry import expired_items, last_activity
from stream_app.worker.model_holder import ModelHolder
from stream_app.worker.pipeline import Pipeline, RawMessage

DAY = 24 * 3600.0
NOW = datetime.fromisoformat("2026-11-22T12:00:00Z").timestamp()


def seen(ts: str | None) -> vs.VisitorState:
    return vs.VisitorState("v", last_seen=ts)


def test_idle_longer_than_the_ttl_expires_and_recent_stays() -> None:
    old, recent = seen("2026-10-01T00:00:00.000Z"), seen("2026-11-21T00:00:00.000Z")
    items = [(b"old", old), (b"recent", recent)]
    assert expired_items(items, NOW, 30 * DAY) == [(b"old", old)]
    assert expired_items(items, NOW, 100 * DAY) == []


def test_forget_markers_expire_from_their_deletion_time() -> None:
    marker = vs.forgotten_marker("v", NOW - 2 * DAY)
    assert last_activity(marker) == NOW - 2 * DAY
    assert expired_items([(b"v", marker)], NOW, DAY) == [(b"v", marker)]
    assert expired_items([(b"v", marker)], NOW, 3 * DAY) == []


def test_states_without_a_time_are_kept() -> None:
    unknown = [(b"a", seen(None)), (b"b", seen("not a time")), (b"c", None)]
    assert expired_items(unknown, NOW, 60) == []


def test_forwarding_keeps_a_merged_visitors_marker_alive() -> None:
    pipeline = Pipeline(ModelHolder(Catalog.load(DEFAULT_CATALOG), 7 * DAY))
    marker = vs.VisitorState(
        "v1", merged_into="user:u1", recent_ids=["e0"], last_seen="2026-10-01T00:00:00.000Z"
    )
    doc = {
        "event_id": "e1",
        "type": "page_view",
        "visitor_id": "v1",
        "ts": "2026-11-22T10:15:00Z",
        "url": "https://acme.example/docs/api",
    }
    msg = RawMessage(b"v1", json.dumps(doc).encode(), "t/0@1")
    result = pipeline.process([msg], lambda vid: marker if vid == "v1" else None)
    assert [canonical for canonical, _ in result.forwards] == ["user:u1"]
    updated = result.states["v1"]
    assert updated.merged_into == "user:u1" and updated.last_seen == "2026-11-22T10:15:00.000Z"
    assert not result.writes  # a marker is not a visitor record
    assert expired_items([(b"v1", updated)], NOW, 30 * DAY) == []
    assert expired_items([(b"v1", marker)], NOW, 30 * DAY) == [(b"v1", marker)]
