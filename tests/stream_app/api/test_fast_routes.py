"""The hot routes served by ``FastRoutes`` answer exactly as FastAPI's own routing does.

Each request below goes to two apps built alike, one with the fast path and one without; the
status, the body and the headers that matter must be the same. Then: the fast path really
serves the hot routes, and hands everything else (other methods, CORS requests) to FastAPI.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from stream_app.api.app import create_app
from stream_app.api.fast import HOT_ROUTES, FastRoutes
from stream_app.store.memory_store import MemoryStore
from tests.stream_app.api.test_auth import (
    ADMIN,
    READ,
    SEGMENT_PAGE,
    WRITE,
    RecordingProducer,
    keyed_settings,
    page_view,
    seeded_store,
)

HEADERS = ("content-type", "www-authenticate", "retry-after", "allow")


def auth(key: str | None, scheme: str = "Bearer") -> dict[str, str]:
    if key is None:
        return {}
    if scheme == "Basic":
        return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    return {"Authorization": f"Bearer {key}"}


def fixed(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "event_id": "e-fixed", "ts": "2026-12-01T10:00:00Z"}


# (method, path, headers, body: JSON or raw bytes)
CASES: list[tuple[str, str, dict[str, str], Any]] = [
    ("GET", "/v1/visitors/v-anon", auth(WRITE), None),
    ("GET", "/v1/visitors/v-merged", auth(WRITE), None),
    ("GET", "/v1/visitors/u-1", auth(WRITE), None),  # a user id with a write key: 404
    ("GET", "/v1/visitors/u-1", auth(READ), None),
    ("GET", "/v1/visitors/user:u-1", auth(ADMIN), None),
    ("GET", "/v1/visitors/nobody", auth(READ), None),
    ("GET", "/v1/visitors/v-anon", {}, None),  # 401 with WWW-Authenticate
    ("GET", "/v1/visitors/v-anon", auth("wrong"), None),
    ("GET", "/v1/visitors/v-anon?writeKey=" + READ, {}, None),  # a secret key in the query
    ("GET", "/v1/visitors/v-anon?writeKey=" + WRITE, {}, None),
    ("GET", "/v1/visitors/", auth(READ), None),
    ("GET", "/v1/visitors/a/b", auth(READ), None),
    ("HEAD", "/v1/visitors/v-anon", auth(READ), None),
    ("PUT", "/v1/visitors/v-anon", auth(ADMIN), None),  # 405 with every method of the path
    ("POST", "/v1/events", auth(WRITE), fixed(page_view())),
    ("POST", "/v1/events", auth(WRITE), {"events": [fixed(page_view()), {"type": "nope"}]}),
    ("POST", "/v1/events", auth(WRITE), {"events": [{"type": "nope"}]}),
    ("POST", "/v1/events", auth(WRITE), b"{not json"),
    ("POST", "/v1/events", {**auth(WRITE), "Content-Type": "text/csv"}, b"a,b"),
    ("POST", "/v1/events", auth(WRITE), b"[1, 2]"),
    ("POST", "/v1/events", {}, fixed(page_view())),
    ("POST", "/v1/events?writeKey=" + WRITE, {}, fixed(page_view())),
    ("POST", "/v1/events", auth(WRITE), {"events": [fixed(page_view())] * 600}),  # too many
    ("GET", "/v1/events", auth(ADMIN), None),
    ("POST", "/v1/batch", auth(WRITE, "Basic"), {"batch": [{**SEGMENT_PAGE, "type": "page"}]}),
    ("POST", "/v1/batch", {}, {"writeKey": WRITE, "batch": [{**SEGMENT_PAGE, "type": "page"}]}),
    ("POST", "/v1/batch", {}, {"writeKey": "wrong", "batch": []}),
    ("POST", "/v1/batch", {}, {"batch": []}),
    ("POST", "/v1/batch", auth(WRITE), {"batch": [{"type": "alias"}]}),
    ("POST", "/v1/page", auth(WRITE), SEGMENT_PAGE),
    ("POST", "/v1/track", auth(WRITE), {**SEGMENT_PAGE, "event": "Signed Up"}),
    ("POST", "/v1/identify", auth(WRITE), {**SEGMENT_PAGE, "userId": "u-9", "traits": {}}),
    ("POST", "/v1/identify", auth(WRITE), {**SEGMENT_PAGE}),  # no userId
    ("GET", "/v1/personas", auth(WRITE), None),  # not a hot route: 403 either way
]


async def answer(app: Any, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["content"] = body
        kwargs["headers"] = {"Content-Type": "application/json", **headers}
    elif body is not None:
        kwargs["json"] = body
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.request(method, path, **kwargs)
    try:
        content: Any = r.json()
    except json.JSONDecodeError:
        content = r.text
    return r.status_code, content, {h: r.headers.get(h) for h in HEADERS}


async def build(fast_routes: bool, **over: Any) -> tuple[Any, RecordingProducer]:
    settings = keyed_settings(**over)
    producer = RecordingProducer(settings)
    app = create_app(
        settings,
        store=await seeded_store(),
        producer=producer,
        create_topics=False,
        fast_routes=fast_routes,
    )
    return app, producer


@pytest.mark.parametrize(("method", "path", "headers", "body"), CASES)
async def test_fast_path_answers_as_fastapi_does(
    method: str, path: str, headers: dict[str, str], body: Any
) -> None:
    (fast_app, fast_sent), (slow_app, slow_sent) = await build(True), await build(False)
    got = await answer(fast_app, method, path, headers, body)
    want = await answer(slow_app, method, path, headers, body)
    assert got == want
    assert fast_sent.sent == slow_sent.sent


async def test_rate_limits_and_store_errors_answer_alike() -> None:
    for fast_routes in (True, False):
        app, _ = await build(fast_routes, rate_limit_ip_per_s=1, rate_limit_ip_burst=2)
        got = [await answer(app, "GET", "/v1/visitors/v-anon", auth(READ), None) for _ in range(3)]
        assert [g[0] for g in got] == [200, 200, 429]
        assert got[2][2]["retry-after"] == "1"
        assert got[2][1]["error"].startswith("too many requests for this client")

    class DownStore(MemoryStore):
        async def get_encoded(self, visitor_id: str) -> str | None:
            raise ConnectionError("Redis is gone (test)")

    answers = []
    for fast_routes in (True, False):
        settings = keyed_settings()
        app = create_app(
            settings,
            store=DownStore(),
            producer=RecordingProducer(settings),
            create_topics=False,
            fast_routes=fast_routes,
        )
        answers.append(await answer(app, "GET", "/v1/visitors/v-anon", auth(READ), None))
    assert answers[0] == answers[1]
    assert answers[0][0] == 503 and answers[0][1] == {
        "error": "store unavailable: Redis is gone (test)"
    }


async def test_the_hot_routes_are_served_by_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[str] = []
    original = FastRoutes._serve

    async def spy(self: FastRoutes, hot: Any, *args: Any) -> None:
        served.append(hot.route.path)
        await original(self, hot, *args)

    monkeypatch.setattr(FastRoutes, "_serve", spy)
    app, _ = await build(True, cors_origins=["https://shop.example"])
    for method, path in sorted(HOT_ROUTES):
        concrete = path.replace("{visitor_id}", "v-anon")
        await answer(app, method, concrete, auth(WRITE), {} if method == "POST" else None)
    assert sorted(served) == sorted(p for _, p in HOT_ROUTES)

    served.clear()  # a browser's request (Origin, with CORS on) goes through FastAPI's CORS
    status, _, _ = await answer(
        app, "GET", "/v1/visitors/v-anon", {**auth(WRITE), "Origin": "https://shop.example"}, None
    )
    assert status == 200 and served == []
    await answer(app, "GET", "/v1/personas", auth(READ), None)
    assert served == []


def test_a_fast_endpoint_must_take_only_the_request_and_path_parameters() -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/events")
    async def collect(request: Any, extra: int) -> None: ...

    with pytest.raises(TypeError, match="request and the path parameters"):
        FastRoutes(app, routes=app.routes, access=None, hot={("POST", "/v1/events")})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing"):
        FastRoutes(app, routes=app.routes, access=None, hot={("GET", "/nowhere")})  # type: ignore[arg-type]
