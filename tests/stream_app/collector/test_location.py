"""The collector sets context.country from CDN headers, the client IP and Segment names."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from stream_app.api.app import create_app
from stream_app.settings import Settings
from stream_app.store.memory_store import MemoryStore
from tests.stream_app.collector.test_routes import RecordingProducer

ClientFactory = Callable[..., Any]


def ev(**over: Any) -> dict[str, Any]:
    base = {
        "event_id": uuid.uuid4().hex,
        "type": "page_view",
        "visitor_id": "v-geo",
        "ts": datetime.now(UTC).isoformat(),
        "url": "https://example.com/docs",
    }
    return {**base, **over}


@pytest.fixture
async def clients() -> AsyncIterator[ClientFactory]:
    opened: list[httpx.AsyncClient] = []

    def make(
        peer: str = "127.0.0.1", **settings: Any
    ) -> tuple[httpx.AsyncClient, RecordingProducer]:
        settings.setdefault("auth_disabled", True)  # location, not access, is tested here
        s = Settings(**settings)
        producer = RecordingProducer(s)
        app = create_app(s, store=MemoryStore(), producer=producer, create_topics=False)
        transport = httpx.ASGITransport(app=app, client=(peer, 51000))
        client = httpx.AsyncClient(transport=transport, base_url="http://test")
        opened.append(client)
        return client, producer

    yield make
    for client in opened:
        await client.aclose()


async def test_a_cdn_header_sets_country_and_region(clients: ClientFactory) -> None:
    client, producer = clients()
    headers = {"CloudFront-Viewer-Country": "US", "CloudFront-Viewer-Country-Region": "WA"}
    r = await client.post("/v1/events", json={"events": [ev(), ev()]}, headers=headers)
    assert r.status_code == 202, r.text
    assert [e["context"] for e in producer.sent] == [{"country": "US", "region": "WA"}] * 2


async def test_the_peer_address_through_the_offline_database(clients: ClientFactory) -> None:
    client, producer = clients(peer="193.0.6.139")
    r = await client.post("/v1/events", json=ev(context={"locale": "nl-NL"}))
    assert r.status_code == 202, r.text
    assert producer.sent[0]["context"] == {"locale": "nl-NL", "country": "NL"}  # no ip added


async def test_a_sent_country_is_kept(clients: ClientFactory) -> None:
    client, producer = clients(peer="8.8.8.8")
    r = await client.post(
        "/v1/events", json=ev(context={"country": "fr"}), headers={"CF-IPCountry": "DE"}
    )
    assert r.status_code == 202
    assert producer.sent[0]["context"] == {"country": "FR"}


async def test_an_untrusted_x_forwarded_for_is_ignored(clients: ClientFactory) -> None:
    # The peer is not a trusted proxy: its X-Forwarded-For claim (a German address) is
    # ignored and the peer itself (a US address) is looked up.
    client, producer = clients(peer="8.8.8.8", trusted_proxies=["10.0.0.0/8"])
    r = await client.post("/v1/events", json=ev(), headers={"X-Forwarded-For": "193.0.6.139"})
    assert r.status_code == 202
    assert producer.sent[0]["context"] == {"country": "US"}


async def test_a_trusted_proxys_x_forwarded_for_is_used(clients: ClientFactory) -> None:
    client, producer = clients(peer="10.0.0.7", trusted_proxies=["10.0.0.0/8"])
    r = await client.post(
        "/v1/events", json=ev(), headers={"X-Forwarded-For": "8.8.8.8, 193.0.6.139"}
    )
    assert r.status_code == 202
    assert producer.sent[0]["context"] == {"country": "NL"}


async def test_cdn_headers_can_be_distrusted(clients: ClientFactory) -> None:
    client, producer = clients(peer="127.0.0.1", geo_cdn_headers=[])
    r = await client.post("/v1/events", json=ev(), headers={"CF-IPCountry": "DE"})
    assert r.status_code == 202
    assert "context" not in producer.sent[0]


async def test_segment_country_names_reach_the_event(clients: ClientFactory) -> None:
    client, producer = clients(peer="8.8.8.8")
    auth = "Basic " + base64.b64encode(b"any:").decode()
    batch = {
        "batch": [
            {
                "type": "page",
                "messageId": f"m-{i}",
                "anonymousId": "a-1",
                "timestamp": datetime.now(UTC).isoformat(),
                "context": {"page": {"url": "https://example.com/"}, "location": {"country": name}},
            }
            for i, name in enumerate(["United States", "Germany", "Atlantis"])
        ]
    }
    r = await client.post("/v1/batch", json=batch, headers={"Authorization": auth})
    assert r.status_code == 202, r.text
    # Names become codes; an unknown name falls back to the sender's address (8.8.8.8: US).
    assert [e["context"]["country"] for e in producer.sent] == ["US", "DE", "US"]
