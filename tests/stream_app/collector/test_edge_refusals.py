"""Hostile input refused at the edge with the field and why; consent collected; the client IP
removed before Kafka (unless PERSONA_KEEP_CLIENT_IP)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from models.catalog import Catalog
from stream_app.api.app import create_app
from stream_app.collector.privacy import without_client_ip
from stream_app.events.validate import EventValidationError, validate_event
from stream_app.settings import Settings
from stream_app.store.memory_store import MemoryStore
from tests.stream_app.api.test_auth import RecordingProducer

HEADERS = {"Authorization": "Bearer wk-1"}


async def client_for(**over: Any) -> tuple[httpx.AsyncClient, RecordingProducer]:
    settings = Settings(write_keys=[SecretStr("wk-1")], **over)
    producer = RecordingProducer(settings)
    app = create_app(settings, store=MemoryStore(), producer=producer, create_topics=False)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://t", headers=HEADERS), producer


def ev(**over: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "page_view",
        "visitor_id": "v-1",
        "ts": datetime.now(UTC).isoformat(),
        "url": "https://example.com/",
        **over,
    }


@pytest.mark.parametrize("field", ["visitor_id", "user_id", "event_id"])
@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ("a\x00b", "U+0000"),
        ("bell\x07", "U+0007"),
        ("new\nline", "U+000A"),
        ("zw\u200bsp", "U+200B"),
        ("rtl\u202e", "U+202E"),
        ("del\x7f", "U+007F"),
        ("priv\ue000", "U+E000"),
        ("unassigned\U000e0fff", "U+E0FFF"),
    ],
)
async def test_non_printable_ids_refused_with_field_and_why(
    field: str, bad: str, code: str
) -> None:
    client, producer = await client_for()
    async with client:
        r = await client.post("/v1/events", json=ev(**{field: bad}))
    assert r.status_code == 400, r.text
    (error,) = r.json()["rejected"][0]["errors"]
    assert error["field"] == field
    assert "printable" in error["message"] and code in error["message"]
    assert producer.sent == []


def test_printable_unicode_ids_still_accepted() -> None:
    for vid in ("visitor 1", "müller-ß", "客户-42", "emoji-😀", "user:u-1"):
        assert validate_event(ev(visitor_id=vid))["visitor_id"] == vid


async def test_unknown_persona_label_refused_listing_the_known_ones() -> None:
    client, producer = await client_for()
    known = Catalog.load(Settings().catalog_path).persona_ids
    label = ev(type="label", persona="martian", source="survey")
    del label["url"]
    async with client:
        r = await client.post("/v1/events", json=label)
        assert r.status_code == 400, r.text
        (error,) = r.json()["rejected"][0]["errors"]
        assert error["field"] == "persona"
        assert all(p in error["message"] for p in known), error
        good = {**label, "persona": known[0], "event_id": "e-good"}
        assert (await client.post("/v1/events", json=good)).status_code == 202
        # The Segment mapping is held to the same catalog.
        seg = {
            "messageId": "m-1",
            "anonymousId": "a-1",
            "timestamp": datetime.now(UTC).isoformat(),
            "event": "Persona Identified",
            "properties": {"persona": "martian", "source": "crm"},
        }
        r = await client.post("/v1/track", json=seg)
        assert r.status_code == 400 and r.json()["rejected"][0]["errors"][0]["field"] == "persona"
    assert [e["event_id"] for e in producer.sent] == ["e-good"]


async def test_consent_events_native_and_segment() -> None:
    client, producer = await client_for()
    consent = ev(type="consent", status="opt_out", source="gpc")
    del consent["url"]
    async with client:
        assert (await client.post("/v1/events", json=consent)).status_code == 202
        seg = {
            "messageId": "m-2",
            "anonymousId": "a-2",
            "timestamp": datetime.now(UTC).isoformat(),
            "event": "Consent Updated",
            "properties": {"status": "opt_in", "source": "banner"},
        }
        assert (await client.post("/v1/track", json=seg)).status_code == 202
        bad = {**seg, "properties": {"status": "maybe"}}
        r = await client.post("/v1/track", json=bad)
        assert r.status_code == 400 and r.json()["rejected"][0]["errors"][0]["field"] == "status"
    first, second = producer.sent
    assert (first["type"], first["status"], first["source"]) == ("consent", "opt_out", "gpc")
    assert (second["type"], second["visitor_id"], second["status"]) == ("consent", "a-2", "opt_in")
    assert second["source"] == "banner"


async def test_client_ip_removed_before_kafka_unless_kept() -> None:
    context = {"ip": "198.51.100.23", "locale": "de-DE"}
    client, producer = await client_for()
    async with client:
        await client.post("/v1/events", json=ev(context=context))
        await client.post(
            "/v1/events", json=ev(event_id="only-ip", context={"ip": "198.51.100.23"})
        )
        seg = {
            "messageId": "m-3",
            "anonymousId": "a-3",
            "timestamp": datetime.now(UTC).isoformat(),
            "context": {"ip": "198.51.100.23", "page": {"url": "https://example.com/"}},
        }
        await client.post("/v1/page", json=seg)
    assert [e.get("context") for e in producer.sent] == [{"locale": "de-DE"}, None, None]
    assert "198.51.100.23" not in repr(producer.sent)

    client, producer = await client_for(keep_client_ip=True)
    async with client:
        await client.post("/v1/events", json=ev(context=context))
    assert producer.sent[0]["context"]["ip"] == "198.51.100.23"


def test_without_client_ip_leaves_the_input_alone() -> None:
    events = [{"a": 1, "context": {"ip": "x", "city": "Berlin"}}, {"a": 2}]
    assert without_client_ip(events) == [{"a": 1, "context": {"city": "Berlin"}}, {"a": 2}]
    assert events[0]["context"]["ip"] == "x"


def test_validation_errors_never_fatal_for_unrelated_fields() -> None:
    with pytest.raises(EventValidationError) as info:
        validate_event(ev(visitor_id="\x00", event_id="\x07"))
    assert {e.field for e in info.value.errors} == {"visitor_id", "event_id"}
