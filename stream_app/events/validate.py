"""Validation of native events: every field error with its path and a human message.

This is what the collector and the worker call; nothing else builds events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from stream_app.events.pii import hash_traits
from stream_app.events.schema import EVENT_TYPES, SCORE_RANGES

TS_HINT = "must be an RFC 3339 timestamp with an offset, like 2026-11-22T10:15:00Z"


@dataclass(frozen=True)
class FieldError:
    field: str  # a path like "dwell_ms" or "context.country"; "" for the whole body
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class EventValidationError(ValueError):
    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{e.field or 'body'}: {e.message}" for e in self.errors))


def _message(err: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    field = str(err["loc"][-1]) if err["loc"] else ""
    if kind == "missing":
        return "is required"
    if kind in ("string_too_long", "too_long"):
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("string_type",):
        return "must be a string"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return "must be an integer"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be an object"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        if field == "dwell_ms":
            return "must be an integer from 0 to 86400000 (ms)"
        if field == "weight":
            return "must be greater than 0 and at most 1"
        return err["msg"].replace("Input should be", "must be")
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind in (
        "timezone_aware",
        "datetime_parsing",
        "datetime_type",
        "datetime_from_date_parsing",
    ):
        return TS_HINT
    if kind == "value_error":
        return str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])


def _field_errors(exc: ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(p) for p in err["loc"])
        message = _message(err)
        if not path and ": " in message:  # model-level checks name their field first
            path, message = message.split(": ", 1)
        out.append(FieldError(path, message))
    return out


def validate_event(
    obj: object, *, now: datetime | None = None, hash_pii: bool = True
) -> dict[str, Any]:
    """Validate one native event; return it normalised as a JSON-ready dict."""
    if not isinstance(obj, dict):
        raise EventValidationError([FieldError("", "an event must be a JSON object")])
    event_type = obj.get("type")
    model = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        known = ", ".join(EVENT_TYPES)
        message = "is required" if event_type is None else f"must be one of {known}"
        raise EventValidationError([FieldError("type", message)])
    errors: list[FieldError] = []
    data = obj
    if event_type == "identify" and isinstance(obj.get("traits"), dict):
        traits, pii_errors = hash_traits(obj["traits"], enabled=hash_pii)
        errors += [FieldError(f, m) for f, m in pii_errors]
        data = {**obj, "traits": traits}
    try:
        event = model.model_validate(data, context={"now": now or datetime.now(UTC)})
    except ValidationError as exc:
        errors += _field_errors(exc)
    if errors:
        raise EventValidationError(errors)
    out = event.model_dump(mode="json", exclude_none=True)
    out["ts"] = event.ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return out


def validate_batch(
    items: Sequence[object], *, now: datetime | None = None, hash_pii: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate each item; return (accepted events, rejections with index and errors)."""
    now = now or datetime.now(UTC)
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            accepted.append(validate_event(item, now=now, hash_pii=hash_pii))
        except EventValidationError as exc:
            event_id = item.get("event_id") if isinstance(item, dict) else None
            rejected.append(
                {
                    "index": index,
                    "event_id": event_id if isinstance(event_id, str) else None,
                    "errors": [e.to_dict() for e in exc.errors],
                }
            )
    return accepted, rejected


def to_json_bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def from_json_bytes(data: bytes | None, *, hash_pii: bool = True) -> dict[str, Any]:
    """Decode and re-validate an event read from Kafka (producers may write there directly)."""
    if data is None:
        raise EventValidationError([FieldError("", "empty message (null value)")])
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventValidationError([FieldError("", f"not UTF-8 JSON: {exc}")]) from None
    return validate_event(obj, hash_pii=hash_pii)


__all__ = [
    "SCORE_RANGES",
    "EventValidationError",
    "FieldError",
    "from_json_bytes",
    "to_json_bytes",
    "validate_batch",
    "validate_event",
]
