"""The write key of native /v1/events: ``?writeKey=`` (sendBeacon) or Basic auth."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from stream_app.api.app import create_app
from stream_app.collector.producer import EventProducer
from stream_app.settings import Settings
from stream_app.store.memory_store import MemoryStore


class RecordingProducer(EventProducer):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sent: list[dict[str, Any]] = []

    async def send_events(
        self, events: Sequence[dict[str, Any]], payloads: Sequence[bytes]
    ) -> None:
        self.sent.extend(events)


async def make_client(settings: Settings) -> tuple[httpx.AsyncClient, RecordingProducer]:
    producer = RecordingProducer(settings)
    app = create_app(settings, store=MemoryStore(), producer=producer, create_topics=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return client, producer


@pytest.fixture
async def keyed() -> AsyncIterator[tuple[httpx.AsyncClient, RecordingProducer]]:
    client, producer = await make_client(Settings(write_keys=[SecretStr("wk-1")]))
    async with client:
        yield client, producer


def page_view() -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "page_view",
        "visitor_id": "v-1",
        "ts": datetime.now(UTC).isoformat(),
        "url": "https://example.com/docs",
        "dwell_ms": 1200,
    }


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def test_known_key_in_query_with_a_beacon_body(
    keyed: tuple[httpx.AsyncClient, RecordingProducer],
) -> None:
    client, producer = keyed
    event = page_view()
    r = await client.post(
        "/v1/events?writeKey=wk-1",
        content=json.dumps(event),
        headers={"content-type": "text/plain;charset=UTF-8"},  # what sendBeacon sends
    )
    assert r.status_code == 202 and r.json() == {"accepted": 1, "rejected": []}
    assert producer.sent[0]["event_id"] == event["event_id"]


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/v1/events?writeKey=nope", {}), ("/v1/events", basic("nope"))],
)
async def test_unknown_key_is_401(
    keyed: tuple[httpx.AsyncClient, RecordingProducer], path: str, headers: dict[str, str]
) -> None:
    client, producer = keyed
    r = await client.post(path, json=page_view(), headers=headers)
    assert r.status_code == 401
    assert "writeKey" in r.json()["error"]
    assert producer.sent == []


async def test_known_key_in_basic_auth(
    keyed: tuple[httpx.AsyncClient, RecordingProducer],
) -> None:
    client, producer = keyed
    r = await client.post("/v1/events", json=page_view(), headers=basic("wk-1"))
    assert r.status_code == 202 and len(producer.sent) == 1


async def test_no_key_keeps_working_for_existing_clients(
    keyed: tuple[httpx.AsyncClient, RecordingProducer],
) -> None:
    client, producer = keyed
    r = await client.post("/v1/events", json=page_view())
    assert r.status_code == 202 and len(producer.sent) == 1


async def test_no_key_refused_when_required() -> None:
    settings = Settings(write_keys=[SecretStr("wk-1")], write_key_required=True)
    client, producer = await make_client(settings)
    async with client:
        r = await client.post("/v1/events", json=page_view())
        assert r.status_code == 401 and producer.sent == []
        r = await client.post("/v1/events?writeKey=wk-1", json=page_view())
        assert r.status_code == 202 and len(producer.sent) == 1


async def test_empty_key_list_accepts_any_key() -> None:
    client, producer = await make_client(Settings(write_key_required=True))
    async with client:
        r = await client.post("/v1/events?writeKey=whatever", json=page_view())
        assert r.status_code == 202 and len(producer.sent) == 1
