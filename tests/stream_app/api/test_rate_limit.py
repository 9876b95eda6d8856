"""Token buckets per client IP and per key: 429 with Retry-After, then recovery."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from stream_app.api.app import create_app
from stream_app.api.ratelimit import TokenBuckets, retry_after_header
from stream_app.settings import Settings
from stream_app.store.memory_store import MemoryStore
from tests.stream_app.api.test_auth import RecordingProducer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token per 0.5 s
    assert buckets.take("b") == 0.0  # buckets are per name
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 10  # refills to the burst, not beyond
    assert [buckets.take("a") for _ in range(4)][-1] > 0


def test_buckets_are_bounded_least_recently_used_first() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, clock=Clock(), max_buckets=2)
    buckets.take("a")
    buckets.take("b")
    buckets.take("a")  # a is now the most recent
    buckets.take("c")  # evicts b
    assert len(buckets) == 2
    assert buckets.take("a") > 0  # a kept its (empty) bucket
    assert buckets.take("b") == 0.0  # b comes back full


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_after_header(w) for w in (0.01, 1.0, 1.2)] == ["1", "1", "2"]


def event() -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "page_view",
        "visitor_id": "v-1",
        "ts": datetime.now(UTC).isoformat(),
        "url": "https://example.com/",
    }


async def client_with(**limits: Any) -> tuple[httpx.AsyncClient, RecordingProducer]:
    settings = Settings(
        write_keys=[SecretStr("wk-a"), SecretStr("wk-b")], admin_keys=[SecretStr("ak")], **limits
    )
    producer = RecordingProducer(settings)
    app = create_app(settings, store=MemoryStore(), producer=producer, create_topics=False)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://t"), producer


async def test_per_ip_limit_429_with_retry_after_then_recovery() -> None:
    client, producer = await client_with(rate_limit_ip_per_s=4, rate_limit_ip_burst=3)
    async with client:
        codes = [
            (await client.post("/v1/events?writeKey=wk-a", json=event())).status_code
            for _ in range(4)
        ]
        assert codes == [202, 202, 202, 429]
        r = await client.post("/v1/events?writeKey=wk-b", json=event())  # another key: same IP
        assert r.status_code == 429
        assert r.headers["retry-after"] == "1"
        assert "too many requests for this client" in r.json()["error"]
        started = time.monotonic()
        await asyncio.sleep(0.3)  # 4 tokens per second: one is back after 0.25 s
        r = await client.post("/v1/events?writeKey=wk-a", json=event())
        assert r.status_code == 202, (r.text, time.monotonic() - started)
        assert len(producer.sent) == 4  # refused requests sent nothing
        # Not limited: admin routes and the open routes.
        for _ in range(5):
            assert (await client.get("/healthz")).status_code == 200
            assert (
                await client.get("/v1/stats", headers={"Authorization": "Bearer ak"})
            ).status_code == 200
        text = (await client.get("/metrics")).text
        assert 'persona_api_rate_limited_total{scope="ip"} 2.0' in text


async def test_per_key_limit_is_per_key() -> None:
    client, _ = await client_with(
        rate_limit_ip_per_s=0, rate_limit_key_per_s=1, rate_limit_key_burst=2
    )
    async with client:
        a = [
            (await client.post("/v1/events?writeKey=wk-a", json=event())).status_code
            for _ in range(3)
        ]
        b = (await client.post("/v1/events?writeKey=wk-b", json=event())).status_code
        lookup = await client.get("/v1/visitors/v-1?writeKey=wk-a")  # lookups share the bucket
        assert (a, b, lookup.status_code) == ([202, 202, 429], 202, 429)
        assert lookup.headers["retry-after"] == "1"
        assert (
            'persona_api_rate_limited_total{scope="key"} 2.0' in (await client.get("/metrics")).text
        )


async def test_segment_body_keys_are_limited_too() -> None:
    client, _ = await client_with(
        rate_limit_ip_per_s=0, rate_limit_key_per_s=1, rate_limit_key_burst=1
    )
    msg = {
        "messageId": "m",
        "anonymousId": "a",
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": {"url": "https://example.com/"},
        "writeKey": "wk-a",
    }
    async with client:
        assert (await client.post("/v1/page", json=msg)).status_code == 202
        assert (await client.post("/v1/page", json=msg)).status_code == 429


async def test_zero_means_no_limit() -> None:
    client, _ = await client_with(rate_limit_ip_per_s=0, rate_limit_key_per_s=0)
    async with client:
        for _ in range(30):
            r = await client.post("/v1/events?writeKey=wk-a", json=event())
            assert r.status_code == 202
