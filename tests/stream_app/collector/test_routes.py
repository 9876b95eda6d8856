"""The collector over ASGI with an in-memory store and a recording producer."""

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
from stream_app.collector.producer import EventProducer, KafkaUnavailable
from stream_app.settings import Settings
from stream_app.store.memory_store import MemoryStore


class RecordingProducer(EventProducer):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sent: list[dict[str, Any]] = []
        self.down = False

    async def send_events(
        self, events: Sequence[dict[str, Any]], payloads: Sequence[bytes]
    ) -> None:
        if self.down:
            raise KafkaUnavailable("broker unreachable (test)")
        assert [json.loads(p) for p in payloads] == list(events)
        self.sent.extend(events)


@pytest.fixture
def settings() -> Settings:
    return Settings(write_keys=[SecretStr("wk-1")], max_body_bytes=64 * 1024)


@pytest.fixture
def producer(settings: Settings) -> RecordingProducer:
    return RecordingProducer(settings)


@pytest.fixture
async def client(
    settings: Settings, producer: RecordingProducer
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store=MemoryStore(), producer=producer, create_topics=False)
    transport = httpx.ASGITransport(app=app)
    # The write key in every request (auth itself: tests/stream_app/api/test_auth.py).
    headers = {"Authorization": "Bearer wk-1"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as c:
        yield c


def ev(**over: Any) -> dict[str, Any]:
    base = {
        "event_id": uuid.uuid4().hex,
        "type": "page_view",
        "visitor_id": "v-1",
        "ts": datetime.now(UTC).isoformat(),
        "url": "https://example.com/docs/api",
    }
    return {**base, **over}


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def test_single_event_accepted(
    client: httpx.AsyncClient, producer: RecordingProducer
) -> None:
    r = await client.post("/v1/events", json=ev())
    assert r.status_code == 202
    assert r.json() == {"accepted": 1, "rejected": []}
    assert producer.sent[0]["url"] == "https://example.com/docs/api"


async def test_batch_partial(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    batch = [ev(), ev(dwell_ms=86_400_001), ev(type="feedback", kind="nps", score=11), ev()]
    r = await client.post("/v1/events", json={"events": batch})
    body = r.json()
    assert r.status_code == 202 and body["accepted"] == 2
    assert [x["index"] for x in body["rejected"]] == [1, 2]
    assert body["rejected"][1]["errors"] == [
        {"field": "score", "message": "nps score must be an integer from 0 to 10"}
    ]
    assert [e["event_id"] for e in producer.sent] == [batch[0]["event_id"], batch[3]["event_id"]]


async def test_all_rejected_is_400(client: httpx.AsyncClient, producer: RecordingProducer) -> None:
    r = await client.post("/v1/events", json=ev(type="unknown"))
    assert r.status_code == 400
    assert r.json()["rejected"][0]["errors"][0]["field"] == "type"
    assert producer.sent == []


@pytest.mark.parametrize(
    ("content", "ctype", "status", "fragment"),
    [
        (b"{oops", "application/json", 400, "not valid JSON"),
        (b"", "application/json", 400, "empty body"),
        (b'{"a": NaN}', "application/json", 400, "not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "UTF-8"),
        (b"[]", "application/json", 400, "event object"),
        (b"a=b", "application/x-www-form-urlencoded", 415, "content type"),
        (b'{"events": 5}', "application/json", 400, "must be a list"),
    ],
)
async def test_bad_bodies(
    client: httpx.AsyncClient, content: bytes, ctype: str, status: int, fragment: str
) -> None:
    r = await client.post("/v1/events", content=content, headers={"content-type": ctype})
    assert r.status_code == status
    assert fragment in r.json()["error"]


async def test_too_large_and_too_many(client: httpx.AsyncClient) -> None:
    big = json.dumps({"events": [ev(title="x" * 1000) for _ in range(80)]}).encode()
    r = await client.post("/v1/events", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    many = {"events": [{"type": "page_view"}] * 501}
    r = await client.post("/v1/events", json=many)
    assert r.status_code == 413 and "500" in r.json()["error"]


async def test_sendbeacon_text_plain_is_json(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/events",
        content=json.dumps(ev()).encode(),
        headers={"content-type": "text/plain;charset=UTF-8"},
    )
    assert r.status_code == 202


async def test_kafka_down_is_503_and_nothing_accepted(
    client: httpx.AsyncClient, producer: RecordingProducer
) -> None:
    producer.down = True
    r = await client.post("/v1/events", json=ev())
    assert r.status_code == 503
    assert r.json()["accepted"] == 0


async def test_segment_write_key_required(client: httpx.AsyncClient) -> None:
    del client.headers["Authorization"]
    msg = {
        "messageId": "m1",
        "anonymousId": "a1",
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": {"url": "https://example.com/"},
    }
    assert (await client.post("/v1/page", json=msg)).status_code == 401
    assert (await client.post("/v1/page", json=msg, headers=basic("wrong"))).status_code == 401
    assert (await client.post("/v1/page", json=msg, headers=basic("wk-1"))).status_code == 202
    assert (await client.post("/v1/page", json={**msg, "writeKey": "wk-1"})).status_code == 202


async def test_segment_calls_map_to_native(
    client: httpx.AsyncClient, producer: RecordingProducer
) -> None:
    ts = datetime.now(UTC).isoformat()
    common = {
        "anonymousId": "anon-9",
        "timestamp": ts,
        "context": {"library": {"name": "analytics-node"}},
    }
    await client.post(
        "/v1/track",
        headers=basic("wk-1"),
        json={
            **common,
            "messageId": "t1",
            "event": "Feedback Submitted",
            "properties": {"kind": "csat", "score": 4},
        },
    )
    await client.post(
        "/v1/track",
        headers=basic("wk-1"),
        json={
            **common,
            "messageId": "t2",
            "event": "Persona Identified",
            "properties": {"persona": "tech_evaluator", "source": "survey"},
        },
    )
    await client.post(
        "/v1/track",
        headers=basic("wk-1"),
        json={
            **common,
            "messageId": "t3",
            "event": "Demo Requested",
            "properties": {"channel": "form", "action": "submit", "campaign": "q4"},
        },
    )
    await client.post(
        "/v1/identify",
        headers=basic("wk-1"),
        json={**common, "messageId": "t4", "userId": "crm-1", "traits": {"email": "X@Y.io"}},
    )
    types = [(e["event_id"], e["type"]) for e in producer.sent]
    assert types == [("t1", "feedback"), ("t2", "label"), ("t3", "touchpoint"), ("t4", "identify")]
    assert producer.sent[2]["name"] == "Demo Requested" and producer.sent[2]["campaign"] == "q4"
    assert "email" not in producer.sent[3]["traits"]
    assert len(producer.sent[3]["traits"]["email_sha256"]) == 64


async def test_segment_batch_rejects_unsupported_calls_in_place(
    client: httpx.AsyncClient, producer: RecordingProducer
) -> None:
    ts = datetime.now(UTC).isoformat()
    body = {
        "batch": [
            {"type": "screen", "messageId": "s1", "anonymousId": "a", "timestamp": ts},
            {
                "type": "page",
                "messageId": "p1",
                "anonymousId": "a",
                "timestamp": ts,
                "context": {"page": {"url": "https://example.com/pricing"}},
            },
            {"type": "page", "messageId": "p2", "anonymousId": "a", "timestamp": ts},
        ],
        "context": {"campaign": {"name": "spring", "source": "newsletter", "medium": "email"}},
        "writeKey": "wk-1",
    }
    r = await client.post("/v1/batch", json=body)
    assert r.status_code == 202
    out = r.json()
    assert out["accepted"] == 1
    assert [(x["index"], x["errors"][0]["field"]) for x in out["rejected"]] == [
        (0, "type"),
        (2, "url"),
    ]
    url = producer.sent[0]["url"]
    assert "utm_campaign=spring" in url and "utm_medium=email" in url


async def test_metrics_count_requests_and_events(client: httpx.AsyncClient) -> None:
    await client.post("/v1/events", json={"events": [ev(), ev(dwell_ms=-1)]})
    text = (await client.get("/metrics")).text
    assert 'persona_collector_events_accepted_total{endpoint="native"} 1.0' in text
    assert 'persona_collector_events_rejected_total{endpoint="native"} 1.0' in text
    assert 'route="/v1/events",status="202"' in text
