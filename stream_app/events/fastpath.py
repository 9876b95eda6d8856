"""A fast path for the common, valid native event; anything else goes to the full validator.

``fast_validate`` returns the normalised event exactly as the pydantic path
(``stream_app.events.schema`` + ``validate.validate_event``) would, or ``None`` when it is
not sure. It never refuses: every input it does not accept outright (a missing field, a
value of an unusual type or shape, anything out of range) returns ``None`` and the caller
runs the full validator, which accepts it or refuses it with the field and why. So the
rules refused stay those of the schema, and the fast path may only be *narrower*:

    fast_validate(obj) is None  or  fast_validate(obj) == full validation of obj

(same keys in the same order, same values). ``tests/stream_app/events/test_fastpath.py``
checks this on generated events, and that typical traffic takes the fast path.

Why: the schema's Python validators (printable ids, the URL rule, JSON integers, the
timestamp checks) and the ``model_dump`` round trip cost ≈30 µs per event in pydantic; the
same checks written straight over the dict cost a few µs (``bench/bench_validate.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, get_args

from stream_app.events.pii import hash_traits
from stream_app.events.schema import (
    ACTIONS,
    CHANNELS,
    LABEL_SOURCES,
    MAX_COMMENT,
    MAX_DWELL_MS,
    MAX_FUTURE,
    SCORE_RANGES,
    URL_PATTERN,
    ConsentSource,
    ConsentStatus,
    json_errors,
)

Out = dict[str, Any]

# The URL rule's documented pattern. A full match implies everything ``schema._http_url``
# checks (no spaces or control characters, http(s), an ASCII host without user info, a port
# of 0-65535, so ``urlsplit`` succeeds): tested in test_fastpath.py. fullmatch, not match:
# Python's ``$`` also matches before a final newline ("http://a/\n").
_URL = re.compile(URL_PATTERN).fullmatch
# The timestamp shapes taken here: ``T``, ASCII digits, 0-6 fraction digits, ``Z`` or an
# offset. Others (``t``/space separators, 7-9 digits, ``z``) go the full way.
_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
).fullmatch
# JavaScript's ``toISOString`` form is already the normalised form: it is kept as it is.
_TS_NORMAL = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"
).fullmatch
_FROMISO = datetime.fromisoformat
_CHANNELS = frozenset(CHANNELS)
_ACTIONS = frozenset(ACTIONS)
_LABEL_SOURCES = frozenset(LABEL_SOURCES)
_CONSENT_STATUSES = frozenset(get_args(ConsentStatus))
_CONSENT_SOURCES = frozenset(get_args(ConsentSource))
_CONTEXT_LIMITS = (
    ("user_agent", 1024),
    ("ip", 64),
    ("locale", 35),
    ("country", 2),
    ("region", 128),
    ("city", 128),
)
_MAX_EXACT_FLOAT_INT = 2**53


class _NotFast(Exception):
    """Not the common case: let the full validator decide."""


def _text(value: Any, max_length: int) -> str:
    """A str of at most ``max_length`` characters that UTF-8 can encode (no lone surrogates)."""
    if type(value) is not str or len(value) > max_length:
        raise _NotFast
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _NotFast from None
    return value


def _id(value: Any) -> str:
    # isprintable() is False for surrogates, so a printable id is also valid UTF-8.
    if type(value) is not str or not 0 < len(value) <= 128 or not value.isprintable():
        raise _NotFast
    return value


def _url(value: Any) -> str:
    # the pattern lets any character but spaces and controls through after the host,
    # lone surrogates too: _text refuses those (pydantic cannot read them)
    if _URL(_text(value, 8192)) is None:
        raise _NotFast
    return value


def _ts(value: Any, now: datetime) -> str:
    if type(value) is not str:
        raise _NotFast
    normal = _TS_NORMAL(value) is not None
    if not normal and _TS(value) is None:
        raise _NotFast
    try:
        utc = _FROMISO(value).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _NotFast from None
    if utc - now > MAX_FUTURE:
        raise _NotFast
    if normal:
        return value
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _context(value: Any) -> Out:
    if type(value) is not dict:
        raise _NotFast
    out: Out = {}
    for key, limit in _CONTEXT_LIMITS:
        item = value.get(key)
        if item is None:
            continue
        if key == "country":
            if type(item) is not str or len(item) != 2 or not item.isascii() or not item.isalpha():
                raise _NotFast
            item = item.upper()
        else:
            _text(item, limit)
        out[key] = item
    return out


def _common(obj: dict[str, Any], now: datetime) -> Out:
    out: Out = {"event_id": _id(obj.get("event_id")), "visitor_id": _id(obj.get("visitor_id"))}
    user_id = obj.get("user_id")
    if user_id is not None:
        out["user_id"] = _id(user_id)
    out["ts"] = _ts(obj.get("ts"), now)
    context = obj.get("context")
    if context is not None:
        out["context"] = _context(context)
    return out


def _optional_text(obj: dict[str, Any], out: Out, key: str, max_length: int = 2048) -> None:
    value = obj.get(key)
    if value is not None:
        out[key] = _text(value, max_length)


def _page_view(obj: dict[str, Any], out: Out, hash_pii: bool) -> None:
    out["url"] = _url(obj.get("url"))
    referrer = obj.get("referrer")
    if referrer is not None:
        out["referrer"] = referrer if referrer == "" and type(referrer) is str else _url(referrer)
    _optional_text(obj, out, "title")
    dwell = obj.get("dwell_ms")
    if dwell is not None:
        if type(dwell) is not int or not 0 <= dwell <= MAX_DWELL_MS:
            raise _NotFast
        out["dwell_ms"] = dwell


def _number(value: Any) -> float:
    """A JSON number as pydantic's strict float gives it: a finite float."""
    if type(value) is float:
        if not math.isfinite(value):
            raise _NotFast
        return value
    if type(value) is int and -_MAX_EXACT_FLOAT_INT <= value <= _MAX_EXACT_FLOAT_INT:
        return float(value)
    raise _NotFast


def _member(value: Any, allowed: frozenset[str]) -> str:
    if type(value) is not str or value not in allowed:
        raise _NotFast
    return value


def _touchpoint(obj: dict[str, Any], out: Out, hash_pii: bool) -> None:
    out["channel"] = _member(obj.get("channel"), _CHANNELS)
    out["action"] = _member(obj.get("action"), _ACTIONS)
    _optional_text(obj, out, "name")
    _optional_text(obj, out, "campaign")
    value = obj.get("value")
    if value is not None:
        out["value"] = _number(value)


def _feedback(obj: dict[str, Any], out: Out, hash_pii: bool) -> None:
    kind = obj.get("kind")
    score = obj.get("score")
    if type(kind) is not str or kind not in SCORE_RANGES or type(score) is not int:
        raise _NotFast
    low, high = SCORE_RANGES[kind]
    if not low <= score <= high:
        raise _NotFast
    out["kind"] = kind
    out["score"] = score
    _optional_text(obj, out, "touchpoint")
    _optional_text(obj, out, "comment", MAX_COMMENT)


def _plain_json(value: Any) -> Any:
    """A copy of a JSON value made of exactly dict/list/str/int/float/bool/None (what the
    full path's ``model_dump`` returns for them); anything else is not the fast case."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        return {k: _plain_json(v) for k, v in value.items()}
    if kind is list:
        return [_plain_json(v) for v in value]
    raise _NotFast


def _identify(obj: dict[str, Any], out: Out, hash_pii: bool) -> None:
    if "user_id" not in out:
        raise _NotFast
    traits = obj.get("traits", {})
    if type(traits) is not dict or json_errors(traits, "traits"):
        raise _NotFast
    hashed, errors = hash_traits(traits, enabled=hash_pii)
    if errors:
        raise _NotFast
    out["traits"] = _plain_json(hashed)


def _label(obj: dict[str, Any], out: Out, hash_pii: bool) -> None:
    out["persona"] = _id(obj.get("persona"))
    out["source"] = _member(obj.get("source"), _LABEL_SOURCES)
    weight = _number(obj["weight"]) if "weight" in obj else 1.0
    if not 0 < weight <= 1:
        raise _NotFast
    out["weight"] = weight


def _consent(obj: dict[str, Any], out: Out, hash_pii: bool) -> None:
    out["status"] = _member(obj.get("status"), _CONSENT_STATUSES)
    out["source"] = _member(obj["source"], _CONSENT_SOURCES) if "source" in obj else "other"


_BY_TYPE: dict[str, Callable[[dict[str, Any], Out, bool], None]] = {
    "page_view": _page_view,
    "touchpoint": _touchpoint,
    "feedback": _feedback,
    "identify": _identify,
    "label": _label,
    "consent": _consent,
}


def fast_validate(obj: object, now: datetime, hash_pii: bool = True) -> Out | None:
    """The normalised event when ``obj`` is a plainly valid native event, else ``None``.

    ``now`` must be an aware datetime (the reference of the 24 h future limit).
    """
    if type(obj) is not dict:
        return None
    event_type = obj.get("type")
    check = _BY_TYPE.get(event_type) if type(event_type) is str else None
    if check is None:
        return None
    try:
        out = _common(obj, now)
        out["type"] = event_type
        check(obj, out, hash_pii)
    except _NotFast:
        return None
    return out


__all__ = ["fast_validate"]
