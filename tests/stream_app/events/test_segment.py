"""Segment HTTP Tracking API -> native events (INTERFACES.md 1.2), with payloads shaped
the way analytics.js (browser) and analytics-node (server) send them."""

from __future__ import annotations

import base64
import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from stream_app.events.segment import (
    parse_segment_batch,
    segment_to_native,
    write_key_from_basic_auth,
)
from stream_app.events.validate import EventValidationError, validate_batch, validate_event

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

# analytics.js 2.0 (AJS "next") page call, as posted to /v1/page
AJS_PAGE: dict[str, Any] = {
    "timestamp": "2026-11-22T08:59:58.123Z",
    "integrations": {},
    "type": "page",
    "properties": {
        "path": "/pricing",
        "referrer": "https://www.google.com/",
        "search": "?plan=pro",
        "title": "Pricing - Example",
        "url": "https://example.com/pricing?plan=pro",
    },
    "name": "Pricing",
    "context": {
        "page": {
            "path": "/pricing",
            "referrer": "https://www.google.com/",
            "search": "?plan=pro",
            "title": "Pricing - Example",
            "url": "https://example.com/pricing?plan=pro",
        },
        "userAgent": UA,
        "userAgentData": {"brands": [], "mobile": False, "platform": "macOS"},
        "locale": "en-GB",
        "library": {"name": "analytics.js", "version": "next-1.74.0"},
        "campaign": {"name": "black_friday", "source": "google", "medium": "cpc"},
        "timezone": "Europe/London",
    },
    "messageId": "ajs-next-1763801998123-7b6e1a2c-5f1d-4a8e-9d3b-2c1e0f9a8b7c",
    "anonymousId": "8f3c2a1e-4b5d-4c6e-9f7a-1b2c3d4e5f60",
    "userId": None,
    "writeKey": "wk_test_123",
    "sentAt": "2026-11-22T08:59:58.140Z",
    "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
}

# analytics-node 2.x track calls inside a /v1/batch body
NODE_LIBRARY = {"library": {"name": "@segment/analytics-node", "version": "2.2.0"}}


def node_message(type_: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "userId": "crm-42",
        "context": copy.deepcopy(NODE_LIBRARY),
        "integrations": {},
        "messageId": f"node-next-1763801999000-{n}",
        "timestamp": "2026-11-22T09:00:00.000Z",
        "_metadata": {"jsRuntime": "node"},
        **fields,
    }


FEEDBACK = node_message(
    "track",
    1,
    event="Feedback Submitted",
    properties={"kind": "csat", "score": 4, "touchpoint": "support_chat", "comment": "quick"},
)
PERSONA = node_message(
    "track",
    2,
    event="Persona Identified",
    properties={"persona": "tech_evaluator", "source": "onboarding", "weight": 0.8},
)
SIGNUP = node_message(
    "track",
    3,
    anonymousId="anon-77",
    event="Webinar Attended",
    properties={"channel": "webinar", "action": "attend", "campaign": "q4-launch", "value": 10},
)
IDENTIFY = node_message(
    "identify",
    4,
    traits={"email": " Ada@Example.com ", "job_title": "CTO", "company_size": 120},
)


def native(message: dict[str, Any], call: str | None = None) -> dict[str, Any]:
    return validate_event(segment_to_native(message, call), now=NOW)


def test_analytics_js_page_maps_to_page_view() -> None:
    out = native(AJS_PAGE, "page")
    assert out == {
        "event_id": AJS_PAGE["messageId"],
        "type": "page_view",
        "visitor_id": AJS_PAGE["anonymousId"],
        "ts": "2026-11-22T08:59:58.123Z",
        "context": {"user_agent": UA, "locale": "en-GB"},
        "url": (
            "https://example.com/pricing?plan=pro"
            "&utm_campaign=black_friday&utm_source=google&utm_medium=cpc"
        ),
        "referrer": "https://www.google.com/",
        "title": "Pricing - Example",
    }


def test_utm_already_in_url_is_left_alone() -> None:
    message = copy.deepcopy(AJS_PAGE)
    message["context"]["page"]["url"] = "https://example.com/?utm_source=newsletter"
    assert native(message, "page")["url"] == "https://example.com/?utm_source=newsletter"


def test_server_side_page_uses_properties_and_segment_location() -> None:
    message = node_message(
        "page",
        9,
        properties={"url": "https://example.com/docs", "referrer": "", "dwell_ms": 4200},
        context={
            "ip": "203.0.113.9",
            "location": {"country": "de", "region": "Berlin", "city": "Berlin"},
        },
    )
    out = native(message)
    assert out["url"] == "https://example.com/docs" and out["referrer"] == ""
    assert out["dwell_ms"] == 4200
    assert out["visitor_id"] == "crm-42" == out["user_id"]  # userId stands in for anonymousId
    assert out["context"] == {
        "ip": "203.0.113.9",
        "country": "DE",
        "region": "Berlin",
        "city": "Berlin",
    }


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ("Peru", "PE"),
        ("United States", "US"),
        ("united kingdom", "GB"),
        ("Russia", "RU"),
        ("Korea, Republic of", "KR"),
        ("South Korea", "KR"),
        ("Viet Nam", "VN"),
        ("DEU", "DE"),
        ("fr", "FR"),
    ],
)
def test_segment_country_names_become_iso_codes(sent: str, code: str) -> None:
    message = node_message(
        "page", 8, properties={"url": "https://e.com/"}, context={"location": {"country": sent}}
    )
    assert native(message)["context"] == {"country": code}


@pytest.mark.parametrize("sent", ["Atlantis", "XX", "", 42])
def test_segment_unknown_countries_are_dropped_not_fatal(sent: object) -> None:
    message = node_message(
        "page", 8, properties={"url": "https://e.com/"}, context={"location": {"country": sent}}
    )
    assert "context" not in native(message)


def test_feedback_submitted_maps_to_feedback() -> None:
    out = native(FEEDBACK, "track")
    assert {k: out[k] for k in ("type", "kind", "score", "touchpoint", "comment", "user_id")} == {
        "type": "feedback",
        "kind": "csat",
        "score": 4,
        "touchpoint": "support_chat",
        "comment": "quick",
        "user_id": "crm-42",
    }


def test_feedback_submitted_out_of_range_is_reported_on_score() -> None:
    bad = copy.deepcopy(FEEDBACK)
    bad["properties"]["score"] = 9
    with pytest.raises(EventValidationError) as info:
        native(bad)
    assert [e.field for e in info.value.errors] == ["score"]


def test_persona_identified_maps_to_label() -> None:
    out = native(PERSONA)
    assert (out["type"], out["persona"], out["source"], out["weight"]) == (
        "label",
        "tech_evaluator",
        "onboarding",
        0.8,
    )


def test_other_track_maps_to_touchpoint_with_name() -> None:
    out = native(SIGNUP)
    assert out["type"] == "touchpoint" and out["visitor_id"] == "anon-77"
    assert (out["channel"], out["action"], out["name"], out["campaign"], out["value"]) == (
        "webinar",
        "attend",
        "Webinar Attended",
        "q4-launch",
        10,
    )
    plain = native(node_message("track", 5, event="Order Completed", properties={}))
    assert (plain["channel"], plain["action"]) == ("other", "other")


def test_identify_hashes_traits() -> None:
    out = native(IDENTIFY, "identify")
    assert out["type"] == "identify" and out["user_id"] == "crm-42"
    assert out["traits"] == {
        "job_title": "CTO",
        "company_size": 120,
        "email_sha256": hashlib.sha256(b"ada@example.com").hexdigest(),
    }


@pytest.mark.parametrize("call", ["screen", "group", "alias", None])
def test_unsupported_calls_are_rejected_on_type(call: str | None) -> None:
    message = node_message(call or "x", 6)
    del message["type"]
    with pytest.raises(EventValidationError) as info:
        segment_to_native(message, call)
    assert info.value.errors[0].field == "type"


def test_batch_item_type_drives_the_mapping_and_bad_items_keep_their_index() -> None:
    screen = node_message("screen", 7, name="Home")
    no_ts = node_message("track", 10, event="Clicked", properties={"channel": "tv"})
    del no_ts["timestamp"]
    body = {
        "batch": [FEEDBACK, screen, PERSONA, IDENTIFY, no_ts],
        "sentAt": "2026-11-22T09:00:01.000Z",
        "context": {"ip": "198.51.100.7", "library": {"name": "analytics-python"}},
    }
    items, pre_rejected = parse_segment_batch(body)
    assert [r["index"] for r in pre_rejected] == [1]
    assert pre_rejected[0]["event_id"] == screen["messageId"]
    accepted, rejected = validate_batch(items, now=NOW)
    assert [e["type"] for e in accepted] == ["feedback", "label", "identify"]
    assert all(e["context"]["ip"] == "198.51.100.7" for e in accepted)  # batch context merged
    assert [r["index"] for r in rejected] == [1, 4]
    assert [e["field"] for e in rejected[1]["errors"]] == ["channel"]  # ts came from sentAt


def test_message_context_wins_over_batch_context() -> None:
    message = node_message("page", 11, properties={"url": "https://e.com/"})
    message["context"]["ip"] = "192.0.2.1"
    items, _ = parse_segment_batch({"batch": [message], "context": {"ip": "198.51.100.7"}})
    assert validate_batch(items, now=NOW)[0][0]["context"]["ip"] == "192.0.2.1"


@pytest.mark.parametrize("body", [{"batch": "nope"}, {}, []])
def test_batch_body_must_hold_a_list(body: Any) -> None:
    with pytest.raises(EventValidationError):
        parse_segment_batch(body)


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (basic(b"wk_test_123:"), "wk_test_123"),
        (basic(b"wk_test_123:ignored"), "wk_test_123"),
        ("basic " + base64.b64encode(b"k:").decode(), "k"),
        (None, None),
        ("", None),
        ("Bearer abc", None),
        ("Basic !!!not-base64", None),
        ("Basic \u00e9\u00e9", None),
        (basic(b"\xff\xfe:"), None),
        (basic(b":secret"), None),
    ],
)
def test_write_key_from_basic_auth(header: str | None, key: str | None) -> None:
    assert write_key_from_basic_auth(header) == key
