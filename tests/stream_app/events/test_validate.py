"""Every rule of INTERFACES.md 1.1, each with its bad-input case."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.events.validate import (
    EventValidationError,
    from_json_bytes,
    to_json_bytes,
    validate_batch,
    validate_event,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def base(type_: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "type": type_,
        "visitor_id": "v-1",
        "ts": "2026-11-22T09:00:00Z",
        **fields,
    }


VALID = {
    "page_view": base(
        "page_view", url="https://example.com/p?utm_source=x", referrer="", dwell_ms=0
    ),
    "touchpoint": base("touchpoint", channel="webinar", action="attend", value=12.5),
    "feedback": base("feedback", kind="nps", score=10, comment="great"),
    "identify": base("identify", user_id="u-1", traits={"industry": "saas"}),
    "label": base("label", persona="tech_evaluator", source="survey", weight=0.5),
    "consent": base("consent", status="opt_out", source="gpc"),
}


def errors_of(obj: object) -> dict[str, str]:
    with pytest.raises(EventValidationError) as info:
        validate_event(obj, now=NOW)
    return {e.field: e.message for e in info.value.errors}


@pytest.mark.parametrize("type_", list(VALID))
def test_valid_events_pass_and_normalise_ts(type_: str) -> None:
    out = validate_event(VALID[type_], now=NOW)
    assert out["type"] == type_
    assert out["ts"] == "2026-11-22T09:00:00.000Z"


def test_offsets_are_normalised_to_utc() -> None:
    out = validate_event({**VALID["page_view"], "ts": "2026-11-22T10:30:00+01:30"}, now=NOW)
    assert out["ts"] == "2026-11-22T09:00:00.000Z"


def test_unknown_fields_are_dropped() -> None:
    assert "junk" not in validate_event({**VALID["page_view"], "junk": 1}, now=NOW)


@pytest.mark.parametrize(
    ("patch", "field", "fragment"),
    [
        ({"event_id": ""}, "event_id", "empty"),
        ({"event_id": 5}, "event_id", "string"),
        ({"visitor_id": "v" * 10_000}, "visitor_id", "at most 128"),
        ({"user_id": "u" * 129}, "user_id", "at most 128"),
        ({"ts": "2026-11-22T09:00:00"}, "ts", "offset"),
        ({"ts": "yesterday"}, "ts", "RFC 3339"),
        ({"ts": (NOW + timedelta(days=2)).isoformat()}, "ts", "24 hours"),
        ({"context": {"country": "Germany"}}, "context.country", "alpha-2"),
        ({"context": "de"}, "context", "object"),
        ({"url": "ftp://example.com/x"}, "url", "http"),
        ({"url": "javascript:alert(1)"}, "url", "http"),
        ({"url": "/relative/path"}, "url", "http"),
        ({"referrer": "not a url"}, "referrer", "http"),
        ({"dwell_ms": -1}, "dwell_ms", "0 to 86400000"),
        ({"dwell_ms": 86_400_001}, "dwell_ms", "0 to 86400000"),
        ({"dwell_ms": "500"}, "dwell_ms", "integer"),
        ({"dwell_ms": 1.5}, "dwell_ms", "integer"),
        ({"dwell_ms": True}, "dwell_ms", "integer"),
    ],
)
def test_common_and_page_view_rules(patch: dict[str, Any], field: str, fragment: str) -> None:
    errs = errors_of({**VALID["page_view"], **patch})
    assert field in errs, errs
    assert fragment in errs[field]


@pytest.mark.parametrize("missing", ["event_id", "visitor_id", "ts", "url"])
def test_missing_required(missing: str) -> None:
    event = dict(VALID["page_view"])
    del event[missing]
    assert errors_of(event) == {missing: "is required"}


def test_unknown_and_missing_type() -> None:
    assert "must be one of" in errors_of(base("click"))["type"]
    assert errors_of({"event_id": "e"})["type"] == "is required"
    assert errors_of([1, 2]) == {"": "an event must be a JSON object"}


def test_country_is_upper_cased() -> None:
    out = validate_event({**VALID["page_view"], "context": {"country": "de"}}, now=NOW)
    assert out["context"]["country"] == "DE"


@pytest.mark.parametrize(
    ("patch", "field"),
    [({"channel": "tv"}, "channel"), ({"action": "like"}, "action"), ({"value": "10"}, "value")],
)
def test_touchpoint_rules(patch: dict[str, Any], field: str) -> None:
    assert field in errors_of({**VALID["touchpoint"], **patch})


@pytest.mark.parametrize(
    ("kind", "bad", "good"),
    [("nps", [-1, 11], [0, 10]), ("csat", [0, 6], [1, 5]), ("ces", [0, 8], [1, 7])],
)
def test_feedback_score_ranges(kind: str, bad: list[int], good: list[int]) -> None:
    for score in bad:
        assert "score" in errors_of({**VALID["feedback"], "kind": kind, "score": score})
    for score in good:
        assert (
            validate_event({**VALID["feedback"], "kind": kind, "score": score}, now=NOW)["score"]
            == score
        )


def test_feedback_other_rules() -> None:
    assert "score" in errors_of({**VALID["feedback"], "score": 7.5})
    assert "kind" in errors_of({**VALID["feedback"], "kind": "stars"})
    assert "2000" in errors_of({**VALID["feedback"], "comment": "x" * 2001})["comment"]


def test_identify_requires_user_id_and_object_traits() -> None:
    event = dict(VALID["identify"])
    del event["user_id"]
    assert errors_of(event) == {"user_id": "is required"}
    assert "traits" in errors_of({**VALID["identify"], "traits": ["a"]})


def test_identify_hashes_email_and_phone_and_never_echoes_them() -> None:
    event = {
        **VALID["identify"],
        "traits": {"email": "  Jane.Doe@Example.COM ", "phone": "+49 (30) 123-4567"},
    }
    out = validate_event(event, now=NOW)
    assert "email" not in out["traits"] and "phone" not in out["traits"]
    assert out["traits"]["email_sha256"] == hashlib.sha256(b"jane.doe@example.com").hexdigest()
    assert out["traits"]["phone_sha256"] == hashlib.sha256(b"+49301234567").hexdigest()
    errs = errors_of({**VALID["identify"], "traits": {"email": "secret-not-an-email"}})
    assert "secret" not in str(errs)
    kept = validate_event(event, now=NOW, hash_pii=False)
    assert kept["traits"]["email"] == event["traits"]["email"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"source": "guess"}, "source"),
        ({"weight": 0}, "weight"),
        ({"weight": 1.5}, "weight"),
        ({"persona": ""}, "persona"),
    ],
)
def test_label_rules(patch: dict[str, Any], field: str) -> None:
    assert field in errors_of({**VALID["label"], **patch})


def test_batch_keeps_valid_and_reports_invalid_by_index() -> None:
    items = [VALID["page_view"], {**VALID["touchpoint"], "channel": "tv"}, "nope", VALID["label"]]
    accepted, rejected = validate_batch(items, now=NOW)
    assert [e["type"] for e in accepted] == ["page_view", "label"]
    assert [(r["index"], r["event_id"]) for r in rejected] == [(1, "e-1"), (2, None)]
    assert rejected[0]["errors"] == [
        {"field": "channel", "message": rejected[0]["errors"][0]["message"]}
    ]


def test_kafka_round_trip_and_undecodable_bytes() -> None:
    event = validate_event(VALID["feedback"], now=NOW)
    assert from_json_bytes(to_json_bytes(event)) == event
    for raw in (b"\x00\xff", b"{", None, b"[]"):
        with pytest.raises(EventValidationError):
            from_json_bytes(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from([*VALID, "other"])},
        optional={
            k: json_values
            for k in (
                "event_id",
                "visitor_id",
                "ts",
                "url",
                "score",
                "kind",
                "traits",
                "context",
                "dwell_ms",
                "weight",
                "persona",
            )
        },
    )
    | json_values
)
def test_only_validation_errors_escape(obj: object) -> None:
    try:
        validate_event(obj, now=NOW)
    except EventValidationError as exc:
        assert exc.errors and all(e.message for e in exc.errors)


# --- hardening: every case below once slipped through or escaped as a non-validation error


@pytest.mark.parametrize(
    ("ts", "fragment"),
    [
        ("2026-11-22T09:00:00", "offset"),  # naive
        ("2026-11-22 09:00:00", "offset"),
        (1_763_800_000, "string"),  # unix seconds are not RFC 3339
        ("1763800000", "RFC 3339"),
        ("2026-11-22", "RFC 3339"),
        ("2026-13-40T09:00:00Z", "RFC 3339"),
        ("0001-01-01T00:00:00+05:00", "range"),
        (None, "RFC 3339"),
    ],
)
def test_ts_must_be_rfc3339_with_offset(ts: object, fragment: str) -> None:
    assert fragment in errors_of({**VALID["page_view"], "ts": ts})["ts"]


def test_ts_future_limit_is_24_hours_from_now() -> None:
    ok = validate_event({**VALID["page_view"], "ts": "2026-11-23T09:59:00Z"}, now=NOW)
    assert ok["ts"] == "2026-11-23T09:59:00.000Z"
    assert "24 hours" in errors_of({**VALID["page_view"], "ts": "2026-11-23T10:01:00Z"})["ts"]
    naive_now = datetime(2026, 11, 22, 10, 0)  # treated as UTC, not a TypeError
    assert validate_event(VALID["page_view"], now=naive_now)["type"] == "page_view"


def test_integral_floats_are_integers_fractional_ones_are_not() -> None:
    assert validate_event({**VALID["page_view"], "dwell_ms": 1500.0}, now=NOW)["dwell_ms"] == 1500
    assert validate_event({**VALID["feedback"], "score": 7.0}, now=NOW)["score"] == 7
    assert "integer" in errors_of({**VALID["feedback"], "score": "7"})["score"]
    assert "integer" in errors_of({**VALID["feedback"], "score": True})["score"]


def test_all_field_errors_are_reported_together() -> None:
    errs = errors_of({**VALID["feedback"], "visitor_id": "", "score": 11, "comment": 5})
    assert set(errs) == {"visitor_id", "score", "comment"}
    assert errs["score"] == "nps score must be an integer from 0 to 10"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"visitor_id": "\ud800"}, "visitor_id"),
        ({"traits": {"x": "\udfff"}}, "traits.x"),
        ({"traits": {"email": "\ud800@example.com"}}, "traits.email"),
        ({"traits": {"score": float("nan")}}, "traits.score"),
    ],
)
def test_values_that_cannot_become_json_are_rejected(patch: dict[str, Any], field: str) -> None:
    assert field in errors_of({**VALID["identify"], **patch})


def test_deeply_nested_traits_are_rejected() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(100):
        deep = {"a": deep}
    errs = errors_of({**VALID["identify"], "traits": deep})
    assert any("nested" in m for m in errs.values())


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"value": float("inf")}, "value"),
        ({"value": float("nan")}, "value"),
        ({"value": True}, "value"),
        ({"name": "n" * 3000}, "name"),
    ],
)
def test_touchpoint_numbers_are_finite(patch: dict[str, Any], field: str) -> None:
    assert field in errors_of({**VALID["touchpoint"], **patch})


@pytest.mark.parametrize(
    "url", ["http://:80/x", "https://exa mple.com/", "https://example.com:99999/", "mailto:a@b.c"]
)
def test_url_needs_a_host_and_no_spaces(url: str) -> None:
    assert "http" in errors_of({**VALID["page_view"], "url": url})["url"]


def test_context_rules() -> None:
    assert (
        "alpha-2"
        in errors_of({**VALID["page_view"], "context": {"country": "D1"}})["context.country"]
    )
    assert "context.city" in errors_of({**VALID["page_view"], "context": {"city": 5}})
    out = validate_event({**VALID["page_view"], "context": {"ip": "1.2.3.4", "x": 1}}, now=NOW)
    assert out["context"] == {"ip": "1.2.3.4"}


def test_persona_catalog_hook() -> None:
    catalog = {"tech_evaluator", "pragmatic_buyer"}
    assert validate_event(VALID["label"], now=NOW, personas=catalog)["persona"] == "tech_evaluator"
    with pytest.raises(EventValidationError) as info:
        validate_event({**VALID["label"], "persona": "ghost"}, now=NOW, personas=catalog)
    assert [e.field for e in info.value.errors] == ["persona"]
    _, rejected = validate_batch([{**VALID["label"], "persona": "ghost"}], now=NOW, personas=[])
    assert rejected[0]["errors"][0]["field"] == "persona"


def test_label_weight_defaults_to_one_and_accepts_one() -> None:
    event = dict(VALID["label"])
    del event["weight"]
    assert validate_event(event, now=NOW)["weight"] == 1.0
    assert validate_event({**VALID["label"], "weight": 1}, now=NOW)["weight"] == 1


def test_invalid_phone_is_not_echoed_and_unicode_digits_are_not_digits() -> None:
    errs = errors_of({**VALID["identify"], "traits": {"phone": "call-me-maybe-555"}})
    assert "traits.phone" in errs and "maybe" not in str(errs)
    assert "traits.phone" in errors_of({**VALID["identify"], "traits": {"phone": "٠١٢٣٤٥٦٧"}})


def test_undecodable_kafka_messages_say_why() -> None:
    cases = {b"\xff\xfe": "UTF-8", b"{": "JSON", b'{"a": NaN}': "NaN", b"[" * 50_000: "deep"}
    for raw, fragment in cases.items():
        with pytest.raises(EventValidationError) as info:
            from_json_bytes(raw)
        assert info.value.errors[0].field == ""
        assert fragment in info.value.errors[0].message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_from_json_bytes_only_raises_validation_errors(raw: bytes) -> None:
    try:
        from_json_bytes(raw, now=NOW)
    except EventValidationError as exc:
        assert exc.errors


@pytest.mark.parametrize(
    ("patch", "field"),
    [({"status": "maybe"}, "status"), ({"status": None}, "status"), ({"source": "tv"}, "source")],
)
def test_consent_status_and_source_are_checked(patch: dict[str, Any], field: str) -> None:
    assert field in errors_of({**VALID["consent"], **patch})


def test_consent_source_defaults_to_other() -> None:
    event = {k: v for k, v in VALID["consent"].items() if k != "source"}
    assert validate_event(event, now=NOW)["source"] == "other"
