"""Segment HTTP Tracking API shapes -> native events (INTERFACES.md 1.2).

The result is a raw native dict; the collector then validates it like any other event,
so a Segment message gets exactly the same field rules and error messages.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from stream_app.events.validate import EventValidationError, FieldError

SUPPORTED = ("page", "track", "identify")
UTM_FIELDS = {
    "name": "utm_campaign",
    "source": "utm_source",
    "medium": "utm_medium",
    "term": "utm_term",
    "content": "utm_content",
}


def write_key_from_basic_auth(header: str | None) -> str | None:
    """The write key is the Basic auth username (analytics.js and analytics-node)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key = decoded.split(":", 1)[0]
    return key or None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _with_utm(url: Any, campaign: dict[str, Any]) -> Any:
    """Append UTM parameters from ``context.campaign`` when the URL does not carry them."""
    if not isinstance(url, str) or not campaign:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    extra = [
        (utm, str(campaign[key]))
        for key, utm in UTM_FIELDS.items()
        if campaign.get(key) and utm not in present
    ]
    if not extra:
        return url
    return urlunsplit(parts._replace(query=urlencode(query + extra)))


def _context(message: dict[str, Any]) -> dict[str, Any]:
    ctx = _dict(message.get("context"))
    location = _dict(ctx.get("location"))
    out = {
        "user_agent": ctx.get("userAgent"),
        "ip": ctx.get("ip"),
        "locale": ctx.get("locale"),
        "country": location.get("country"),
        "region": location.get("region"),
        "city": location.get("city"),
    }
    return {k: v for k, v in out.items() if v is not None}


def segment_to_native(message: dict[str, Any], call: str | None) -> dict[str, Any]:
    """Map one Segment message; ``call`` is the endpoint's call, None for /v1/batch items."""
    if not isinstance(message, dict):
        raise EventValidationError([FieldError("", "a Segment message must be a JSON object")])
    kind = call or message.get("type")
    if kind not in SUPPORTED:
        raise EventValidationError(
            [
                FieldError(
                    "type", f"Segment call {kind!r} is not supported; use page, track or identify"
                )
            ]
        )
    visitor_id = message.get("anonymousId") or message.get("userId")
    ts = (
        message.get("timestamp")
        or message.get("originalTimestamp")
        or message.get("receivedAt")
        or message.get("sentAt")
    )
    native: dict[str, Any] = {
        "event_id": message.get("messageId"),
        "visitor_id": visitor_id,
        "ts": ts,
    }
    if message.get("userId") is not None:
        native["user_id"] = message["userId"]
    context = _context(message)
    if context:
        native["context"] = context
    props = _dict(message.get("properties"))
    page = _dict(_dict(message.get("context")).get("page"))
    campaign = _dict(_dict(message.get("context")).get("campaign"))

    if kind == "page":
        native["type"] = "page_view"
        native["url"] = _with_utm(page.get("url") or props.get("url"), campaign)
        referrer = page.get("referrer", props.get("referrer"))
        if referrer is not None:
            native["referrer"] = referrer
        title = page.get("title") or props.get("title") or message.get("name")
        if title is not None:
            native["title"] = title
        dwell = props.get("dwell_ms")
        if dwell is not None:
            native["dwell_ms"] = dwell
    elif kind == "identify":
        native["type"] = "identify"
        native["traits"] = _dict(message.get("traits")) or _dict(
            _dict(message.get("context")).get("traits")
        )
    else:
        name = message.get("event")
        if name == "Feedback Submitted":
            native.update(type="feedback", kind=props.get("kind"), score=props.get("score"))
            for key in ("touchpoint", "comment"):
                if props.get(key) is not None:
                    native[key] = props[key]
        elif name == "Persona Identified":
            native.update(type="label", persona=props.get("persona"), source=props.get("source"))
            if props.get("weight") is not None:
                native["weight"] = props["weight"]
        else:
            native.update(
                type="touchpoint",
                channel=props.get("channel", "other"),
                action=props.get("action", "other"),
                name=name,
            )
            campaign_name = props.get("campaign") or campaign.get("name")
            if campaign_name is not None:
                native["campaign"] = campaign_name
            if props.get("value") is not None:
                native["value"] = props["value"]
    return native


def parse_segment_batch(body: dict[str, Any]) -> tuple[list[object], list[dict[str, Any]]]:
    """Map a /v1/batch body; returns (native dicts, rejections) indexed by batch position.

    Rejections here are mapping failures (unsupported calls); field rules are checked
    afterwards on the native dicts, whose indexes are those of the original batch.
    """
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise EventValidationError([FieldError("batch", "must be a list of Segment messages")])
    shared_ctx = _dict(body.get("context"))
    items: list[object] = []
    rejected: list[dict[str, Any]] = []
    for index, message in enumerate(batch):
        if isinstance(message, dict) and shared_ctx:
            message = {**message, "context": {**shared_ctx, **_dict(message.get("context"))}}
        try:
            items.append(segment_to_native(message, None))
        except EventValidationError as exc:
            items.append(_Rejected(index))
            rejected.append(
                {
                    "index": index,
                    "event_id": message.get("messageId") if isinstance(message, dict) else None,
                    "errors": [e.to_dict() for e in exc.errors],
                }
            )
    return items, rejected


class _Rejected:
    """Placeholder keeping batch positions aligned; validation skips it."""

    def __init__(self, index: int) -> None:
        self.index = index
