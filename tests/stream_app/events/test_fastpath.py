"""The fast path accepts only what the full (pydantic) validator accepts, with the same result.

``fast_validate`` never refuses: it returns ``None`` for anything it is not sure of and the
full path decides. So the property is: for every input, either the fast path says ``None``,
or the full path accepts the input too and returns exactly the same event (same keys in the
same order, same values and types). And typical traffic must take the fast path.
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from models.catalog import Catalog
from models.simulator import Simulator
from stream_app.events.fastpath import fast_validate
from stream_app.events.schema import URL_PATTERN, _http_url
from stream_app.events.validate import (
    EventValidationError,
    from_json_bytes,
    to_json_bytes,
    validate_batch,
    validate_event,
    validate_event_full,
)
from stream_app.settings import DEFAULT_CATALOG

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PERSONAS = frozenset({"tech_evaluator", "pragmatic_buyer"})


def base(type_: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "type": type_,
        "visitor_id": "v-1",
        "ts": "2026-11-22T09:00:00.123Z",
        **fields,
    }


CONTEXT = {"user_agent": "Mozilla/5.0", "country": "de", "locale": "en-US", "ip": "1.2.3.4"}
VALID = {
    "page_view": base(
        "page_view",
        url="https://example.com/p?utm_source=x",
        referrer="https://www.google.com/",
        title="Pricing",
        dwell_ms=1200,
        context=CONTEXT,
    ),
    "touchpoint": base(
        "touchpoint", channel="webinar", action="attend", value=12.5, name="n", campaign="c"
    ),
    "feedback": base("feedback", kind="nps", score=10, comment="great", touchpoint="t"),
    "identify": base(
        "identify",
        user_id="u-1",
        traits={"industry": "saas", "email": " A@B.co ", "phone": "+1 555 1234", "n": [1, 2.5]},
    ),
    "label": base("label", persona="tech_evaluator", source="survey", weight=0.5),
    "consent": base("consent", status="opt_out", source="gpc"),
}
FIELDS = {
    "event_id",
    "visitor_id",
    "user_id",
    "ts",
    "context",
    "type",
    "url",
    "referrer",
    "title",
    "dwell_ms",
    "channel",
    "action",
    "name",
    "campaign",
    "value",
    "kind",
    "score",
    "touchpoint",
    "comment",
    "traits",
    "persona",
    "source",
    "weight",
    "status",
}


def ordered(value: Any) -> Any:
    """Dicts as lists of items (so key order counts), values with their types."""
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return (type(value).__name__, value)


def check_agrees(obj: Any, hash_pii: bool = True) -> bool:
    """Assert the property for ``obj``; return whether the fast path took it."""
    fast = fast_validate(obj, NOW, hash_pii)
    if fast is None:
        return False
    try:
        full = validate_event_full(obj, now=NOW, hash_pii=hash_pii)
    except EventValidationError as exc:  # pragma: no cover - the failure being tested for
        raise AssertionError(f"fast path accepted what the full path refuses: {exc}") from None
    assert ordered(fast) == ordered(full)
    return True


# --- strategies: values near every rule's edges ------------------------------------------

edge_text = st.sampled_from(
    [
        "",
        "a",
        " ",
        "x" * 128,
        "x" * 129,
        "x" * 2000,
        "x" * 2001,
        "x" * 2049,
        "a\x00b",
        "\x7f",
        "\n",
        "\u200b",
        "\ue000",
        "\ud800",
        "a\udfff",
        "müller-ß",
        "客户",
        "😀",
        "DE",
        "de",
        "D1",
        "ÄÖ",
        "Germany",
    ]
)
ts_text = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, off: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{off}",
    st.sampled_from(["2026", "0001", "9999", "0000", "2025", "٢٠٢٦"]),
    st.sampled_from(["01", "02", "11", "12", "13", "00"]),
    st.sampled_from(["01", "22", "23", "28", "29", "30", "31", "32", "00"]),
    st.sampled_from(["T", "t", " ", "_"]),
    st.sampled_from(["00", "09", "10", "23", "24"]),
    st.sampled_from(["00", "59", "60"]),
    st.sampled_from(["00", "59", "60", "61"]),
    st.sampled_from(["", ".", ".1", ".12", ".123", ".123456", ".1234567", ".123456789"]),
    st.sampled_from(
        [
            "",
            "Z",
            "z",
            "+00:00",
            "-00:00",
            "+05:30",
            "-12:00",
            "+23:59",
            "+24:00",
            "+14:60",
            "+0530",
        ]
    ),
)
url_text = st.builds(
    lambda scheme, host, port, rest: f"{scheme}{host}{port}{rest}",
    st.sampled_from(["http://", "https://", "HTTP://", "hTTps://", "ftp://", "http:/", "", "//"]),
    st.sampled_from(
        [
            "example.com",
            "a",
            "",
            "user@host",
            "[::1]",
            "xn--mller-kva.de",
            "müller.de",
            "a b",
            "%41",
        ]
    ),
    st.sampled_from(["", ":", ":0", ":80", ":65535", ":65536", ":99999", ":x"]),
    st.sampled_from(
        ["", "/", "/p?utm_source=x#f", "?q", "#", "/a b", "/\x00", "/é", "x", "/\n", "\n", "/\t"]
    ),
)
numbers = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.sampled_from([0, 1, 86_400_000, 86_400_001, -1, 2**53, 2**53 + 1, 2**64, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 1.5, 7.0, 1e-300, 1500.0]),
    st.booleans(),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | edge_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
field_values = st.one_of(
    edge_text,
    st.text(max_size=12),
    ts_text,
    url_text,
    numbers,
    st.none(),
    st.sampled_from(
        [
            "page_view",
            "nps",
            "csat",
            "ces",
            "email",
            "click",
            "survey",
            "opt_in",
            "gpc",
            "other",
            "tech_evaluator",
            "a@b.co",
            "+49 30 1234567",
            "not-an-email",
        ]
    ),
    st.dictionaries(
        st.sampled_from(["user_agent", "ip", "locale", "country", "region", "city", "x"]),
        st.none() | edge_text | numbers,
        max_size=4,
    ),
    st.dictionaries(
        st.sampled_from(["email", "phone", "industry", "size", "nested"]), json_values, max_size=4
    ),
    json_values,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event = dict(VALID[draw(st.sampled_from(sorted(VALID)))])
    for key in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=4)):
        how = draw(st.sampled_from(["drop", "replace", "replace", "edge"]))
        if how == "drop" and key != "type":
            event.pop(key, None)
        elif how == "edge" and isinstance(event.get(key), str):
            # a valid value with one character more at either end: anchors, trailing \n
            extra = draw(st.sampled_from(AFFIXES) | st.characters())
            event[key] = draw(st.sampled_from([extra + event[key], event[key] + extra]))
        else:
            event[key] = draw(field_values)
    return event


AFFIXES = ["\n", "\r", " ", "\t", "\x00", "\x7f", "\ud800", "\u200b", "\u2028", "Z", "0", "/", "@"]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_events(), st.booleans())
@example({**VALID["page_view"], "ts": "2026-11-23T10:00:00.123+00:00"}, True)  # the 24 h edge
@example({**VALID["page_view"], "ts": "2026-11-23T10:00:00.124Z"}, True)
@example({**VALID["page_view"], "ts": "0001-01-01T00:00:00+05:00"}, True)  # before year 1 in UTC
@example({**VALID["page_view"], "ts": "9999-12-31T23:59:59-05:00"}, True)  # after year 9999
@example({**VALID["touchpoint"], "value": 10**400}, True)
@example({**VALID["identify"], "traits": {"big": 10**30, "x": {"y": [None, True]}}}, False)
@example({**VALID["identify"], "traits": {"x": [float("nan")]}}, True)
@example({**VALID["identify"], "traits": {"x": {"y": "\udfff"}}}, True)
@example({**VALID["identify"], "traits": {1: "x"}}, True)
@example({**VALID["identify"], "traits": {"x": (1, 2)}}, True)
@example({**VALID["identify"], "traits": {"email": "no-at-sign"}}, False)
@example({**VALID["label"], "weight": 0}, True)
@example({**VALID["label"], "weight": 0.0}, True)
@example({**VALID["label"], "weight": 1.0000001}, True)
@example({**VALID["touchpoint"], "value": float("inf")}, True)
@example({**VALID["touchpoint"], "value": float("nan")}, True)
@example({**VALID["feedback"], "kind": "csat", "score": 6}, True)
@example({**VALID["feedback"], "kind": "ces", "score": 0}, True)
@example({**VALID["feedback"], "score": 10.0}, True)
@example({**VALID["page_view"], "ts": "2026-11-22T09:00:00.1234567Z"}, True)
@example({**VALID["page_view"], "ts": "2026-11-22T09:00:00+24:00"}, True)
@example({**VALID["page_view"], "context": {"country": "ÄÖ"}}, True)
@example({**VALID["page_view"], "context": {"city": "a\udfff"}}, True)
@example({**VALID["page_view"], "title": "\ud800"}, True)
@example({**VALID["page_view"], "dwell_ms": 86_400_001}, True)
@example({**VALID["page_view"], "dwell_ms": 86_400_000}, True)
@example({**VALID["page_view"], "dwell_ms": True}, True)
@example({**VALID["page_view"], "url": "http://a/\n"}, True)  # re's $ matches before a \n
@example({**VALID["page_view"], "referrer": "https://b\n"}, True)
@example({**VALID["page_view"], "url": "http://a/\ud800"}, True)  # not UTF-8
@example({**VALID["page_view"], "referrer": "http://a/\udfff"}, True)
@example({**VALID["page_view"], "context": {1: "x", "city": "B"}, 2: 3}, True)
@example({**VALID["page_view"], "referrer": "", "url": "http://a:65536/"}, True)
def test_fast_path_accepts_only_what_the_full_path_accepts_identically(
    event: Any, hash_pii: bool
) -> None:
    check_agrees(event, hash_pii)
    # and so validate_event accepts and refuses exactly what the full path does, alike
    assert outcome(validate_event, event, hash_pii) == outcome(validate_event_full, event, hash_pii)


def outcome(validate: Any, event: Any, hash_pii: bool = True) -> Any:
    try:
        return ordered(validate(event, now=NOW, hash_pii=hash_pii, personas=PERSONAS))
    except EventValidationError as exc:
        return exc.errors


def test_deeply_nested_traits_are_not_fast() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(16):
        deep = {"a": deep}
    assert not check_agrees({**VALID["identify"], "traits": deep})
    assert check_agrees({**VALID["identify"], "traits": deep["a"]})


@pytest.mark.parametrize("type_", sorted(VALID))
def test_valid_events_of_every_type_take_the_fast_path(type_: str) -> None:
    assert check_agrees(VALID[type_])
    assert check_agrees(VALID[type_], hash_pii=False)
    minimal = {k: v for k, v in VALID[type_].items() if k in {*base(type_), "user_id"}}
    minimal.update(
        {
            "page_view": {"url": "http://a"},
            "touchpoint": {"channel": "email", "action": "open"},
            "feedback": {"kind": "ces", "score": 1},
            "identify": {},
            "label": {"persona": "p", "source": "crm"},
            "consent": {"status": "opt_in"},
        }[type_]
    )
    assert check_agrees(minimal)


def test_simulated_traffic_takes_the_fast_path() -> None:
    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=5, labelled_fraction=0.05)
    now = datetime.now(UTC)
    taken = 0
    for i, event in enumerate(sim.stream(400, concurrency=100)):
        if i >= 2000:
            break
        raw = json.loads(json.dumps(event))
        fast = fast_validate(raw, now)
        assert fast is not None, event
        assert ordered(fast) == ordered(validate_event_full(raw, now=now))
        assert from_json_bytes(to_json_bytes(fast), now=now) == fast
        taken += 1
    assert taken == 2000


def test_offsets_and_fractions_are_normalised_like_the_full_path() -> None:
    for ts in (
        "2026-11-22T10:30:00+01:30",
        "2026-11-22T09:00:00.5Z",
        "2026-11-22T09:00:00.123456-00:00",
        "2026-11-21T23:00:00.9999-10:00",
    ):
        assert check_agrees({**VALID["page_view"], "ts": ts}), ts


@settings(max_examples=1000, deadline=None)
@given(url_text | st.text(alphabet=string.printable, max_size=30))
def test_the_url_pattern_implies_the_whole_url_rule(url: str) -> None:
    import re

    if re.fullmatch(URL_PATTERN, url):  # as the fast path reads it
        assert _http_url(url) == url


def test_refusals_still_name_the_field() -> None:
    """The fast path declines and the full path words the refusal, batch or single."""
    bad = {**VALID["page_view"], "dwell_ms": -1, "visitor_id": "a\x00"}
    with pytest.raises(EventValidationError) as info:
        validate_event(bad, now=NOW)
    assert {e.field for e in info.value.errors} == {"dwell_ms", "visitor_id"}
    accepted, rejected = validate_batch([VALID["feedback"], bad, VALID["label"]], now=NOW)
    assert [e["type"] for e in accepted] == ["feedback", "label"]
    assert rejected[0]["index"] == 1
    assert {e["field"] for e in rejected[0]["errors"]} == {"dwell_ms", "visitor_id"}
    with pytest.raises(EventValidationError) as info:
        validate_event(VALID["label"], now=NOW, personas={"other"})
    assert [(e.field, e.message) for e in info.value.errors] == [
        ("persona", "is not a persona of the catalog (known: other)")
    ]


def test_future_limit_uses_the_given_now() -> None:
    event = {**VALID["page_view"], "ts": (NOW + timedelta(hours=23)).isoformat()}
    assert fast_validate(event, NOW) is not None
    assert fast_validate(event, NOW - timedelta(hours=2)) is None
    with pytest.raises(EventValidationError):
        validate_event(event, now=NOW - timedelta(hours=2))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id":"e","type":"identify","visitor_id":"v","user_id":"u",'
        b'"ts":"2026-11-22T09:00:00Z","traits":{"n":123456789012345678901234567890,"m":-9223372036854775809}}',
        b'{"event_id":"e","type":"identify","visitor_id":"v","user_id":"u",'
        b'"ts":"2026-11-22T09:00:00Z","traits":{"n":18446744073709551615,"f":1.5e300,"z":-0.0}}',
    ],
)
def test_kafka_decoding_reads_numbers_exactly_like_json(raw: bytes) -> None:
    """orjson reads integers beyond 64 bits as floats; the decoder keeps json's reading."""
    expected = validate_event_full(json.loads(raw), now=NOW)
    decoded = from_json_bytes(raw, now=NOW)
    assert ordered(decoded) == ordered(expected)


@settings(max_examples=500, deadline=None)
@given(mutated_events())
def test_kafka_decoding_agrees_with_json_decoding(event: dict[str, Any]) -> None:
    try:
        raw = json.dumps(event, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return
    try:
        expected: Any = ordered(validate_event_full(json.loads(raw), now=NOW))
    except EventValidationError as exc:
        expected = exc.errors
    try:
        got: Any = ordered(from_json_bytes(raw, now=NOW))
    except EventValidationError as exc:
        got = exc.errors
    assert got == expected
