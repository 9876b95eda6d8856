"""Native events, exactly as INTERFACES.md section 1.1 states them (pydantic v2).

Decisions (also in the report of the change that wrote this file):

- Integer fields (``dwell_ms``, ``score``) take JSON integers only: ``"5"`` and ``true`` are
  rejected, as are numbers with a fraction. A number with a zero fraction (``5.0``) is an
  integer in JSON's data model (and in JSON Schema), so it is accepted and emitted as ``5``.
- ``ts`` must be an RFC 3339 string with an offset (``Z`` or ``±hh:mm``); unix numbers and
  naive timestamps are rejected. It is normalised to UTC.
- Unknown top-level (and ``context``) fields are ignored and not forwarded, so producers can
  send extra fields without being rejected, and nothing unvalidated reaches Kafka.
- ``identify.traits`` is optional (default ``{}``) but must be a JSON object when present,
  with string keys, at most ``MAX_TRAITS_DEPTH`` levels deep and valid Unicode throughout.
- Ids (``event_id``, ``visitor_id``, ``user_id``, ``label.persona``) are 1 to 128 printable
  characters (``str.isprintable``): control characters and other non-printable code points
  are refused with the code point and its position.
- ``label.persona`` is only checked as an id here; whether it is in the catalog is checked
  by ``validate_event(..., personas=...)`` (the hook) or by the worker that holds the catalog.

These models are the reference and word every refusal; plainly valid events are accepted
by ``events/fastpath.py`` without them. A rule changed here must be changed there too (or
the fast path made to decline the case): ``tests/stream_app/events/test_fastpath.py``
checks that the fast path accepts nothing these models refuse, with the same result.
"""

from __future__ import annotations

import math
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

MAX_FUTURE = timedelta(hours=24)
MAX_DWELL_MS = 86_400_000
MAX_COMMENT = 2000
MAX_TRAITS_DEPTH = 16
SCORE_RANGES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
Channel = Literal[
    "email",
    "social",
    "paid_search",
    "display",
    "webinar",
    "form",
    "chat",
    "call",
    "store",
    "event",
    "other",
]
Action = Literal["impression", "click", "open", "submit", "attend", "reply", "purchase", "other"]
LabelSource = Literal["survey", "crm", "onboarding", "manual"]
ConsentStatus = Literal["opt_out", "opt_in"]
ConsentSource = Literal["banner", "gpc", "api", "crm", "other"]
FeedbackKind = Literal["nps", "csat", "ces"]
CHANNELS: tuple[str, ...] = get_args(Channel)
ACTIONS: tuple[str, ...] = get_args(Action)
LABEL_SOURCES: tuple[str, ...] = get_args(LabelSource)

_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.][0-9]{1,9})?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?$"
)


def _printable_ranges() -> str:
    """A regex character class of exactly the characters ``str.isprintable`` accepts."""
    ranges: list[tuple[int, int]] = []
    start = None
    for code in range(sys.maxunicode + 2):
        printable = code <= sys.maxunicode and chr(code).isprintable()
        if printable and start is None:
            start = code
        elif not printable and start is not None:
            ranges.append((start, code - 1))
            start = None

    def lit(code: int) -> str:
        ch = chr(code)
        return "\\" + ch if ch in "\\]^-[" else ch

    return "".join(lit(a) if a == b else f"{lit(a)}-{lit(b)}" for a, b in ranges)


ID_PATTERN = f"^[{_printable_ranges()}]+$"
"""The id rule as an OpenAPI ``pattern`` (the validator itself uses ``str.isprintable``)."""
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
# The documented form of the URL rule (OpenAPI ``pattern``), enforced as well: http(s), an
# ASCII host (punycode; no user info, no IP-literal brackets), a port of 0-65535, then
# anything but spaces and control characters.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~%!$&'()*+,;=-]+(:" + _PORT + r"?)?"
    r"([/?#][^\x00-\x20\x7f]*)?$"
)
_URL_SHAPE = re.compile(URL_PATTERN)
TS_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _printable_id(value: str) -> str:
    """Ids are printable Unicode: no control characters (NUL, BEL, newline, ...), no format,
    separator (other than the space), private-use, surrogate or unassigned code points."""
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        raise ValueError(
            f"must contain only printable characters (found U+{ord(bad):04X} at position "
            f"{value.index(bad)}: control and other non-printable characters are refused)"
        )
    return value


Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(_printable_id),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 128, "pattern": ID_PATTERN}),
]
Text = Annotated[str, StringConstraints(max_length=2048)]


def _json_int(value: Any) -> Any:
    """JSON integers only: no strings, no booleans, no numbers with a fraction."""
    if isinstance(value, bool):
        raise ValueError("must be an integer (not true/false)")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise ValueError("must be an integer (no fraction)")
    raise ValueError("must be an integer")


JsonInt = Annotated[int, BeforeValidator(_json_int)]
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):  # Python callers; naive ones fail AwareDatetime below
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string, like 2026-11-22T10:15:00Z")
    match = _RFC3339.match(value)
    if match is None:
        raise ValueError("must be an RFC 3339 timestamp with an offset, like 2026-11-22T10:15:00Z")
    if match["offset"] is None:
        raise ValueError("must include a UTC offset (Z or +hh:mm); naive timestamps are ambiguous")
    return value


def _http_url(value: str) -> str:
    if _URL_FORBIDDEN.search(value):
        raise ValueError("must be an absolute http or https URL without spaces")
    if not _URL_SHAPE.match(value):
        raise ValueError(
            "must be an absolute http or https URL with an ASCII host name (no user info) "
            "and a port from 0 to 65535"
        )
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("must be an absolute http or https URL") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ValueError("must be an absolute http or https URL")
    return value


def _url_or_empty(value: str) -> str:
    return value if value == "" else _http_url(value)


HttpUrl = Annotated[
    str,
    StringConstraints(max_length=8192),
    AfterValidator(_http_url),
    WithJsonSchema({"type": "string", "maxLength": 8192, "pattern": URL_PATTERN}),
]
UrlOrEmpty = Annotated[
    str,
    StringConstraints(max_length=8192),
    AfterValidator(_url_or_empty),
    WithJsonSchema(
        {"type": "string", "maxLength": 8192, "pattern": f"^$|{URL_PATTERN}"},
    ),
]
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": TS_PATTERN,
            "description": "RFC 3339 with an offset, a real date and time, at most 24 hours "
            "ahead of the server's clock; normalised to UTC",
            "examples": ["2026-11-22T10:15:00Z"],
        }
    ),
]


def _check_json(value: Any, path: str, depth: int, errors: list[tuple[str, str]]) -> None:
    if depth > MAX_TRAITS_DEPTH:
        errors.append((path, f"is nested more than {MAX_TRAITS_DEPTH} levels deep"))
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            errors.append((path, "must be valid Unicode text"))
    elif isinstance(value, float) and not math.isfinite(value):
        errors.append((path, "must be a finite number"))
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append((path, "keys must be strings"))
                continue
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                errors.append((path, "keys must be valid Unicode text"))
                continue
            _check_json(item, f"{path}.{key}", depth + 1, errors)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}.{i}", depth + 1, errors)
    elif value is not None and not isinstance(value, bool | int | float):
        errors.append((path, "must be a JSON value"))


def json_errors(value: Any, path: str) -> list[tuple[str, str]]:
    """Problems that would make ``value`` unserialisable as JSON (paths start at ``path``)."""
    errors: list[tuple[str, str]] = []
    _check_json(value, path, 0, errors)
    return errors


class Context(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    user_agent: Annotated[str, StringConstraints(max_length=1024)] | None = None
    ip: Annotated[str, StringConstraints(max_length=64)] | None = None
    locale: Annotated[str, StringConstraints(max_length=35)] | None = None
    country: Annotated[
        str | None,
        WithJsonSchema({"type": ["string", "null"], "pattern": "^[A-Za-z]{2}$"}),
    ] = None
    region: Annotated[str, StringConstraints(max_length=128)] | None = None
    city: Annotated[str, StringConstraints(max_length=128)] | None = None

    @field_validator("country", mode="before")
    @classmethod
    def _country(cls, value: Any) -> Any:
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or len(value) != 2
            or not value.isascii()
            or not value.isalpha()
        ):
            raise ValueError("must be an ISO 3166-1 alpha-2 country code (two letters, like DE)")
        return value.upper()


class EventBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Id
    visitor_id: Id
    user_id: Id | None = None
    ts: Timestamp
    context: Context | None = None

    @field_validator("ts")
    @classmethod
    def _not_far_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        now = (info.context or {}).get("now") or datetime.now(UTC)
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of the representable date range") from None
        if utc - now > MAX_FUTURE:
            raise ValueError("must not be more than 24 hours in the future")
        return utc


class PageView(EventBase):
    type: Literal["page_view"]
    url: HttpUrl
    referrer: UrlOrEmpty | None = None
    title: Text | None = None
    # The bounds before the validator: pydantic then documents them as JSON Schema's
    # minimum/maximum (after it, as "ge"/"le", which no client reads; the fuzzer found it).
    dwell_ms: Annotated[int, Field(ge=0, le=MAX_DWELL_MS), BeforeValidator(_json_int)] | None = None


class Touchpoint(EventBase):
    type: Literal["touchpoint"]
    channel: Channel
    action: Action
    name: Text | None = None
    campaign: Text | None = None
    value: Number | None = None  # integers or decimals; not "10", true, NaN or infinity


class Feedback(EventBase):
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        json_schema_extra={  # the score's range depends on the kind
            "oneOf": [
                {
                    "properties": {
                        "kind": {"const": kind},
                        "score": {"minimum": low, "maximum": high},
                    }
                }
                for kind, (low, high) in SCORE_RANGES.items()
            ]
        },
    )

    type: Literal["feedback"]
    kind: FeedbackKind
    score: JsonInt
    touchpoint: Text | None = None
    comment: Annotated[str, StringConstraints(max_length=MAX_COMMENT)] | None = None

    @field_validator("score")
    @classmethod
    def _score_in_range(cls, value: int, info: ValidationInfo) -> int:
        kind = info.data.get("kind")  # absent when kind itself is invalid
        if kind in SCORE_RANGES:
            low, high = SCORE_RANGES[kind]
            if not low <= value <= high:
                raise ValueError(f"{kind} score must be an integer from {low} to {high}")
        return value


# The documented form of the e-mail and phone rules of stream_app/events/pii.py.
# Written with explicit characters, not \\s or \\d, so every regex dialect reads them alike:
# WHITESPACE is exactly what str.isspace / str.strip / Python's \\s take.
WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
_NOT_AT_OR_SPACE = f"[^@{WHITESPACE}]"
EMAIL_PATTERN = (
    f"^[{WHITESPACE}]*{_NOT_AT_OR_SPACE}+@{_NOT_AT_OR_SPACE}+[.]{_NOT_AT_OR_SPACE}+[{WHITESPACE}]*$"
)
_PHONE_SEP = f"[{WHITESPACE}().-]"
PHONE_PATTERN = f"^{_PHONE_SEP}*[+]?({_PHONE_SEP}*[0-9]){{6,15}}{_PHONE_SEP}*$"
TRAITS_SCHEMA = {
    "type": "object",
    "description": "any JSON object (at most 16 levels deep); email and phone are "
    "replaced by their SHA-256 (email_sha256, phone_sha256) at the edge",
    "properties": {
        "email": {"type": ["string", "null"], "pattern": EMAIL_PATTERN},
        "phone": {"type": ["string", "null"], "pattern": PHONE_PATTERN},
    },
}


class Identify(EventBase):
    type: Literal["identify"]
    user_id: Id
    traits: Annotated[dict[str, Any], WithJsonSchema(TRAITS_SCHEMA)] = Field(default_factory=dict)

    @field_validator("traits")
    @classmethod
    def _json_safe(cls, value: dict[str, Any]) -> dict[str, Any]:
        errors = json_errors(value, "traits")
        if errors:
            # one message; validate_event reports the precise paths before this runs
            raise ValueError(errors[0][1])
        return value


class Label(EventBase):
    type: Literal["label"]
    persona: Id
    source: LabelSource
    weight: Annotated[Number, Field(gt=0, le=1)] = 1.0


class Consent(EventBase):
    """A consent signal (an addition to the contract). ``opt_out`` stops profiling the
    visitor and forgets what is stored, like ``DELETE /v1/visitors/{id}``; later events of
    the visitor are counted but not profiled until an ``opt_in``."""

    type: Literal["consent"]
    status: ConsentStatus
    source: ConsentSource = "other"


Event = Annotated[
    PageView | Touchpoint | Feedback | Identify | Label | Consent, Field(discriminator="type")
]
"""The discriminated union of the native events (``type`` is the tag)."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_TYPES: dict[str, type[EventBase]] = {
    "page_view": PageView,
    "touchpoint": Touchpoint,
    "feedback": Feedback,
    "identify": Identify,
    "label": Label,
    "consent": Consent,
}
