"""The served OpenAPI documents every route's bodies, statuses, content types and security."""

from __future__ import annotations

import re
from typing import Any

import pytest

from stream_app.api.app import create_app
from stream_app.api.auth import ROUTE_POLICIES, Role
from stream_app.api.openapi import ROUTE_DOCS
from stream_app.events.pii import hash_traits
from stream_app.events.schema import (
    EMAIL_PATTERN,
    ID_PATTERN,
    PHONE_PATTERN,
    TS_PATTERN,
    URL_PATTERN,
)
from stream_app.events.validate import EventValidationError, validate_event
from stream_app.settings import Settings
from stream_app.store.memory_store import MemoryStore


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(Settings(), store=MemoryStore(), create_topics=False).openapi()


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), p): op for p, ops in spec["paths"].items() for m, op in ops.items()}


def test_every_route_is_documented_with_its_access(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    assert set(ops) == set(ROUTE_DOCS) == set(ROUTE_POLICIES)
    for key, op in ops.items():
        policy = ROUTE_POLICIES[key]
        codes = set(op["responses"])
        assert "422" not in codes, key  # invalid parameters are answered 400
        if policy.role is None:
            assert op["security"] == [] and "401" not in codes, key
            continue
        assert "401" in codes and ("403" in codes) == (policy.role > Role.WRITE), key
        assert ("429" in codes) == policy.limited, key
        schemes = {name for requirement in op["security"] for name in requirement}
        assert ("writeKey" in schemes) == (policy.role == Role.WRITE), key


def test_bodies_statuses_and_content_types(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    for path in ("/v1/events", "/v1/batch", "/v1/page", "/v1/track", "/v1/identify"):
        op = ops[("POST", path)]
        assert op["requestBody"]["required"] is True, path
        assert {"202", "400", "401", "413", "415", "429", "503"} <= set(op["responses"]), path
        assert "200" not in op["responses"], path
    assert set(ops[("GET", "/metrics")]["responses"]["200"]["content"]) == {"text/plain"}
    audience = ops[("GET", "/v1/audiences/{persona}")]["responses"]["200"]["content"]
    assert set(audience) == {"text/csv", "application/json"}
    assert "text/html" in ops[("GET", "/dashboard")]["responses"]["200"]["content"]
    assert ops[("GET", "/v1/visitors/{visitor_id}")]["responses"]["404"]
    schemas = spec["components"]["schemas"]
    assert schemas["Label"]["properties"]["persona"]["enum"]
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "basic", "writeKey"}


@pytest.mark.parametrize(
    "value", ["abc", "ü-客-😀", "with space", "a\x00", "b\x07", "\u200b", "\ue000", "x\n"]
)
def test_the_documented_id_pattern_is_the_id_rule(value: str) -> None:
    documented = re.fullmatch(ID_PATTERN[1:-1], value) is not None
    try:
        validate_event(
            {
                "event_id": value,
                "type": "page_view",
                "visitor_id": "v",
                "ts": "2026-01-01T00:00:00Z",
                "url": "https://e.com/",
            }
        )
        accepted = True
    except EventValidationError:
        accepted = False
    assert documented == accepted


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/a?b=c#d", True),
        ("HTTP://localhost:8000", True),
        ("http://a:65535/", True),
        ("http://a:65536/", False),
        ("http://user@host/", False),
        ("ftp://x/", False),
        ("http:///x", False),
        ("http://[::1]/", False),
        ("http://a b/", False),
    ],
)
def test_the_documented_url_pattern_is_the_url_rule(url: str, ok: bool) -> None:
    assert (re.match(URL_PATTERN, url) is not None) == ok
    event = {
        "event_id": "e",
        "type": "page_view",
        "visitor_id": "v",
        "ts": "2026-01-01T00:00:00Z",
        "url": url,
    }
    try:
        validate_event(event)
        accepted = True
    except EventValidationError:
        accepted = False
    assert accepted == ok


@pytest.mark.parametrize(
    "value", ["a@b.co", " A@B.CO\t", "a@@b.c", "a@b", "\x1ca@b.c", "a@b.\x1dc", "a b@c.d"]
)
def test_the_documented_email_pattern_is_the_email_rule(value: str) -> None:
    documented = re.search(EMAIL_PATTERN, value) is not None
    assert documented == (not hash_traits({"email": value})[1])


@pytest.mark.parametrize(
    "value", ["+49 30 1234", "(+)123456", "12345", "+1 (555) 123-4567", "1" * 16, "+-1234567"]
)
def test_the_documented_phone_pattern_is_the_phone_rule(value: str) -> None:
    documented = re.search(PHONE_PATTERN, value) is not None
    assert documented == (not hash_traits({"phone": value})[1])


def test_ts_pattern_uses_ascii_digits_only() -> None:
    assert re.match(TS_PATTERN, "2026-01-01T00:00:00Z")
    assert not re.match(TS_PATTERN, "٢٠٢٦-01-01T00:00:00Z")


def _schema_objects(node: Any) -> Any:
    if isinstance(node, dict):
        if "type" in node or "anyOf" in node or "oneOf" in node:
            yield node
        for value in node.values():
            yield from _schema_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_objects(value)


def test_numeric_bounds_use_json_schema_keywords(spec: dict[str, Any]) -> None:
    """pydantic writes "ge"/"le" for bounds it cannot attach to the core schema; no client or
    fuzzer reads those, so a negative dwell_ms looked schema-valid (found by schemathesis)."""
    pydantic_only = {"ge", "le", "gt", "lt"}
    leaks = [obj for obj in _schema_objects(spec["components"]) if pydantic_only & set(obj)]
    assert leaks == []
    dwell = spec["components"]["schemas"]["PageView"]["properties"]["dwell_ms"]["anyOf"][0]
    assert (dwell["minimum"], dwell["maximum"]) == (0, 86_400_000)
