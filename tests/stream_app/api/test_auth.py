"""Keys with roles (INTERFACES.md section 3): every route x {no key, write, read, admin}.

The API runs over ASGI with an in-memory store and a recording producer; "allowed" means the
route's own answer (2xx, or 404 for an unknown id), never 401/403.
"""

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
from stream_app.api.auth import ROUTE_POLICIES, KeyRing, Role
from stream_app.collector.producer import EventProducer
from stream_app.settings import Settings
from stream_app.store import VisitorWrite
from stream_app.store.memory_store import MemoryStore

WRITE, READ, ADMIN = "wk-publishable", "rk-secret", "ak-secret"
KEYS = {"none": None, "write": WRITE, "read": READ, "admin": ADMIN}


class RecordingProducer(EventProducer):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sent: list[dict[str, Any]] = []
        self.raw: list[tuple[str, bytes | None, bytes | None]] = []

    async def send_events(
        self, events: Sequence[dict[str, Any]], payloads: Sequence[bytes]
    ) -> None:
        self.sent.extend(events)

    async def send_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.raw.append((topic, key, value))


def keyed_settings(**over: Any) -> Settings:
    return Settings(
        write_keys=[SecretStr(WRITE)],
        read_keys=[SecretStr(READ)],
        admin_keys=[SecretStr(ADMIN)],
        **over,
    )


async def seeded_store() -> MemoryStore:
    """An anonymous visitor ``v-anon`` and a user ``u-1`` who merged visitor ``v-merged``."""
    store = MemoryStore()
    await store.write(
        [
            VisitorWrite({"visitor_id": "v-anon", "events": 2, "personas": {}}),
            VisitorWrite(
                {
                    "visitor_id": "user:u-1",
                    "user_id": "u-1",
                    "events": 5,
                    "personas": {},
                    "merged_visitor_ids": ["v-merged"],
                },
                aliases=("v-merged",),
            ),
        ]
    )
    return store


async def make_client(settings: Settings) -> tuple[httpx.AsyncClient, RecordingProducer]:
    producer = RecordingProducer(settings)
    app = create_app(settings, store=await seeded_store(), producer=producer, create_topics=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return client, producer


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    c, _ = await make_client(keyed_settings())
    async with c:
        yield c


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def page_view(**over: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "page_view",
        "visitor_id": "v-1",
        "ts": datetime.now(UTC).isoformat(),
        "url": "https://example.com/docs",
        **over,
    }


SEGMENT_PAGE = {
    "messageId": "m-1",
    "anonymousId": "a-1",
    "timestamp": "2026-01-01T00:00:00Z",
    "properties": {"url": "https://example.com/"},
}

# (method, path, body) for each route; the last columns: the lowest role allowed.
REQUESTS: list[tuple[str, str, Any, str | None]] = [
    ("GET", "/healthz", None, None),
    ("GET", "/metrics", None, None),
    ("GET", "/tracker.js", None, None),
    ("POST", "/v1/events", page_view(), "write"),
    ("POST", "/v1/batch", {"batch": [{**SEGMENT_PAGE, "type": "page"}]}, "write"),
    ("POST", "/v1/page", SEGMENT_PAGE, "write"),
    ("POST", "/v1/track", {**SEGMENT_PAGE, "event": "Signed Up"}, "write"),
    ("POST", "/v1/identify", {**SEGMENT_PAGE, "userId": "u-9", "traits": {}}, "write"),
    ("GET", "/v1/visitors/v-anon", None, "write"),  # the visitor id the browser sends
    ("GET", "/v1/visitors/v-merged", None, "write"),  # ... also once merged into a user
    ("GET", "/v1/visitors/u-1", None, "read"),  # a user id: not for write keys (404)
    ("GET", "/v1/visitors/user:u-1", None, "read"),  # the merged user's own id: the same
    ("GET", "/v1/personas", None, "read"),
    ("GET", "/v1/audiences/tech_evaluator?format=json", None, "admin"),
    ("GET", "/v1/stats", None, "admin"),
    ("GET", "/dashboard", None, "admin"),
    ("DELETE", "/v1/visitors/v-anon", None, "admin"),
]
ORDER = [None, "write", "read", "admin"]


@pytest.mark.parametrize("who", list(KEYS))
@pytest.mark.parametrize(("method", "path", "body", "lowest"), REQUESTS)
async def test_role_table(who: str, method: str, path: str, body: Any, lowest: str | None) -> None:
    client, _ = await make_client(keyed_settings())
    async with client:
        r = await client.request(method, path, json=body, headers=bearer(KEYS[who]))
    allowed = ORDER.index(lowest) <= ORDER.index(who if who != "none" else None)
    if allowed:
        assert r.status_code < 300, (r.status_code, r.text)
    elif who == "none":
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].endswith('realm="persona-stream"')
    elif path.startswith("/v1/visitors/") and method == "GET":
        # A write key asking for a user: 404 exactly like an unknown id, nothing leaks.
        assert r.status_code == 404 and "u-1" in r.json()["error"], r.text
        assert "user_id" not in r.text
    else:
        assert r.status_code == 403, r.text
        assert "role" in r.json()["error"]


def test_every_route_has_a_policy() -> None:
    app = create_app(keyed_settings(), store=MemoryStore(), create_topics=False)
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert routes == set(ROUTE_POLICIES), "a route without a policy needs admin (fail closed)"
    tested = {(m, p.split("?")[0]) for m, p, _, _ in REQUESTS}
    for method, path in routes - {("GET", "/readyz")}:  # readyz asks Kafka: integration
        template = path.replace("{visitor_id}", "v-anon").replace("{persona}", "tech_evaluator")
        assert (method, template) in tested, (method, path)


@pytest.mark.parametrize(
    "headers_or_query",
    [basic(WRITE), bearer(WRITE), {"query": WRITE}, {"body": WRITE}],
    ids=["basic", "bearer", "query", "segment-body"],
)
async def test_write_key_transports(headers_or_query: dict[str, str]) -> None:
    client, producer = await make_client(keyed_settings())
    async with client:
        if "query" in headers_or_query:
            r = await client.post(f"/v1/events?writeKey={WRITE}", json=page_view())
        elif "body" in headers_or_query:
            r = await client.post("/v1/page", json={**SEGMENT_PAGE, "writeKey": WRITE})
        else:
            r = await client.post("/v1/events", json=page_view(), headers=headers_or_query)
    assert r.status_code == 202, r.text
    assert len(producer.sent) == 1


async def test_unknown_keys_are_401_and_send_nothing() -> None:
    client, producer = await make_client(keyed_settings())
    async with client:
        for r in [
            await client.post("/v1/events?writeKey=nope", json=page_view()),
            await client.post("/v1/events", json=page_view(), headers=bearer("nope")),
            await client.post("/v1/events", json=page_view(), headers=basic("nope")),
            await client.post("/v1/page", json={**SEGMENT_PAGE, "writeKey": "nope"}),
            await client.post("/v1/page", json=SEGMENT_PAGE),
            await client.get("/v1/stats", headers=bearer(ADMIN + "x")),
        ]:
            assert r.status_code == 401, r.text
    assert producer.sent == []


async def test_secret_keys_in_the_query_count_only_as_write_keys(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post(f"/v1/events?writeKey={ADMIN}", json=page_view())).status_code == 202
    r = await client.get(f"/v1/stats?writeKey={ADMIN}")
    assert r.status_code == 403 and "Authorization header" in r.json()["error"]
    assert (await client.get("/v1/stats", headers=basic(ADMIN))).status_code == 200


async def test_admin_delete_and_write_key_may_not(client: httpx.AsyncClient) -> None:
    r = await client.delete("/v1/visitors/v-anon", headers=bearer(WRITE))
    assert r.status_code == 403
    assert (await client.get("/v1/visitors/v-anon", headers=bearer(READ))).status_code == 200
    r = await client.delete("/v1/visitors/v-anon", headers=bearer(ADMIN))
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert (await client.get("/v1/visitors/v-anon", headers=bearer(READ))).status_code == 404


async def test_auth_disabled_lets_everything_through() -> None:
    client, _ = await make_client(Settings(auth_disabled=True))
    async with client:
        assert (await client.post("/v1/events", json=page_view())).status_code == 202
        assert (await client.get("/v1/visitors/u-1")).status_code == 200
        assert (await client.get("/v1/stats")).status_code == 200


async def test_no_keys_configured_means_nothing_but_open_routes() -> None:
    client, producer = await make_client(Settings())
    async with client:
        assert (await client.post("/v1/events?writeKey=x", json=page_view())).status_code == 401
        assert (await client.get("/healthz")).status_code == 200
    assert producer.sent == []


def test_keyring_highest_role_wins_and_empty_keys_are_ignored() -> None:
    ring = KeyRing(
        Settings(
            write_keys=[SecretStr("k"), SecretStr("")],
            admin_keys=[SecretStr("k")],
        )
    )
    entry = ring.lookup("k")
    assert entry is not None and entry.role is Role.ADMIN
    assert ring.lookup("") is None and ring.lookup("K") is None and len(ring) == 1
    assert ring.lookup("\udcff") is None  # not encodable: refused, no exception


async def test_refusals_are_counted_in_metrics(client: httpx.AsyncClient) -> None:
    await client.get("/v1/stats")
    await client.get("/v1/stats", headers=bearer(WRITE))
    text = (await client.get("/metrics")).text
    assert 'persona_api_auth_refused_total{status="401"} 1.0' in text
    assert 'persona_api_auth_refused_total{status="403"} 1.0' in text


async def test_401_body_says_how_to_send_a_key(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/events", content=json.dumps(page_view()))
    assert r.status_code == 401
    assert "Bearer" in r.json()["error"] and "writeKey" in r.json()["error"]
