"""GET /tracker.js, CORS on the tracker routes only, and display content in /v1/personas."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from stream_app.api.app import create_app
from stream_app.api.cors import is_tracker_path
from stream_app.collector.producer import EventProducer
from stream_app.settings import Settings
from stream_app.store.memory_store import MemoryStore

SITE = "http://shop.example:8100"
READ_KEY = "rk-1"  # auth is not the point here (tests/stream_app/api/test_auth.py)


async def client_for(settings: Settings) -> httpx.AsyncClient:
    settings = Settings(**{**settings.model_dump(), "read_keys": [SecretStr(READ_KEY)]})
    app = create_app(
        settings, store=MemoryStore(), producer=EventProducer(settings), create_topics=False
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://api",
        headers={"Authorization": f"Bearer {READ_KEY}"},
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(Settings(cors_origins=[SITE])) as c:
        yield c


async def test_tracker_is_served_as_javascript(client: httpx.AsyncClient) -> None:
    r = await client.get("/tracker.js", headers={"Origin": SITE})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "max-age" in r.headers["cache-control"]
    for name in ("sendBeacon", "visibilitychange", "randomUUID", "writeKey", "assignment"):
        assert name in r.text, name
    assert r.headers["access-control-allow-origin"] == SITE  # fetched cross-origin too


async def test_cors_on_tracker_routes(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/visitors/nobody", headers={"Origin": SITE})
    assert r.status_code == 404
    assert r.headers["access-control-allow-origin"] == SITE
    r = await client.options(
        "/v1/events",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == SITE
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in r.headers


async def test_no_cors_for_other_origins_and_other_routes(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/visitors/nobody", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    for path in ("/dashboard", "/v1/audiences/tech_evaluator", "/healthz"):
        r = await client.get(path, headers={"Origin": SITE})
        assert "access-control-allow-origin" not in r.headers, path


async def test_no_cors_unless_configured() -> None:
    async with await client_for(Settings()) as c:
        r = await c.get("/v1/visitors/nobody", headers={"Origin": SITE})
        assert r.status_code == 404
        assert "access-control-allow-origin" not in r.headers


async def test_wildcard_origin() -> None:
    async with await client_for(Settings(cors_origins=["*"])) as c:
        r = await c.get("/tracker.js", headers={"Origin": "http://anywhere.example"})
        assert r.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    ("path", "tracker"),
    [
        ("/tracker.js", True),
        ("/v1/events", True),
        ("/v1/visitors/v-1", True),
        ("/v1/personas", True),
        ("/v1/events/x", False),
        ("/v1/visitors", False),
        ("/v1/audiences/x", False),
        ("/dashboard", False),
    ],
)
def test_tracker_paths(path: str, tracker: bool) -> None:
    assert is_tracker_path(path) is tracker


async def test_personas_carry_display_content(client: httpx.AsyncClient) -> None:
    personas = (await client.get("/v1/personas")).json()["personas"]
    assert personas
    for p in personas:
        assert set(p["display"]) == {"headline", "text", "cta", "cta_url"}
        assert all(p["display"].values()), p
    tech = next(p for p in personas if p["id"] == "tech_evaluator")
    assert tech["display"]["cta_url"] == "/docs"
