"""Segment HTTP Tracking API shapes -> native events (INTERFACES.md 1.2).

The result is a raw native dict; the collector then validates it like any other event,
so a Segment message gets exactly the same field rules and error messages (error paths
are those of the native event, e.g. ``url`` or ``score``).

Mapping decisions:

- ``visitor_id`` is ``anonymousId``; a message with only ``userId`` (server-side
  analytics-node calls often have no anonymous id) uses ``userId`` as the visitor id.
- ``ts`` is ``timestamp``, else ``originalTimestamp``, ``receivedAt``, ``sentAt`` (the
  message's, then, in a batch, the batch's).
- ``context.location.country`` is usually a country *name* ("United States"): names,
  alpha-3 and alpha-2 codes become the ISO alpha-2 code (:mod:`stream_app.geo.country_names`);
  a value that is none of these is dropped rather than rejecting the whole event.
- ``context.campaign`` (``name``/``source``/``medium``/``term``/``content``) is appended to
  the page URL as ``utm_*`` parameters only when the URL has no ``utm_*`` parameter at all.
- ``page``: URL from ``context.page.url``, else ``properties.url``; same for referrer and
  title (title also falls back to the page ``name``); ``properties.dwell_ms`` is passed on.
- ``track``: "Feedback Submitted" -> feedback, "Persona Identified" -> label, "Consent
  Updated" -> consent (``properties.status`` ``opt_out``/``opt_in``, ``properties.source``,
  default ``other``), anything else -> touchpoint with ``channel``/``action`` defaulting
  to ``other``; an unknown channel or action is rejected like on the native endpoint.
- ``screen``, ``group``, ``alias`` (and anything else) are rejected with a ``type`` error.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from stream_app.events.validate import EventValidationError, FieldError
from stream_app.geo.country_names import country_code_of

SUPPORTED = ("page", "track", "identify")
CONSENT_EVENT = "Consent Updated"
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
    except (binascii.Error, ValueError):  # bad base64, non-ASCII header, not UTF-8
        return None
    key = decoded.split(":", 1)[0]
    return key or None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _with_utm(url: Any, campaign: dict[str, Any]) -> Any:
    """Append UTM parameters from ``context.campaign`` when the URL carries none."""
    if not isinstance(url, str) or not campaign:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url  # validation reports the bad URL
    if any(k.lower().startswith("utm_") for k, _ in parse_qsl(parts.query, True)):
        return url
    extra = [
        (utm, str(campaign[key]))
        for key, utm in UTM_FIELDS.items()
        if isinstance(campaign.get(key), str | int | float) and campaign[key] != ""
    ]
    if not extra:
        return url
    query = f"{parts.query}&{urlencode(extra)}" if parts.query else urlencode(extra)
    return urlunsplit(parts._replace(query=query))


def _country(value: Any) -> Any:
    return country_code_of(value)


def _context(message: dict[str, Any]) -> dict[str, Any]:
    ctx = _dict(message.get("context"))
    location = _dict(ctx.get("location"))
    out = {
        "user_agent": ctx.get("userAgent"),
        "ip": ctx.get("ip"),
        "locale": ctx.get("locale"),
        "country": _country(location.get("country")),
        "region": location.get("region"),
        "city": location.get("city"),
    }
    return {k: v for k, v in out.items() if v is not None}


def segment_to_native(message: dict[str, Any], call: str | None) -> dict[str, Any]:
    """Map one Segment message; ``call`` is the endpoint's call, None for /v1/batch items."""
    if not isinstance(message, dict):
        raise EventValidationError([FieldError("", "a Segment message must be a JSON object")])
    kind = call or message.get("type")
    if kind is None:
        raise EventValidationError([FieldError("type", "is required (page, track or identify)")])
    if kind not in SUPPORTED:
        shown = kind if isinstance(kind, str) and len(kind) <= 32 else "this"
        raise EventValidationError(
            [
                FieldError(
                    "type",
                    f"Segment call {shown!r} is not supported; use page, track or identify",
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
        elif name == CONSENT_EVENT:
            native.update(type="consent", status=props.get("status"))
            if props.get("source") is not None:
                native["source"] = props["source"]
        else:
            channel, action = props.get("channel"), props.get("action")
            native.update(
                type="touchpoint",
                channel="other" if channel is None else channel,
                action="other" if action is None else action,
            )
            if name is not None:
                native["name"] = name
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
    if not isinstance(body, dict):
        raise EventValidationError([FieldError("", "a batch body must be a JSON object")])
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise EventValidationError([FieldError("batch", "must be a list of Segment messages")])
    shared_ctx = _dict(body.get("context"))
    sent_at = body.get("sentAt")
    items: list[object] = []
    rejected: list[dict[str, Any]] = []
    for index, message in enumerate(batch):
        if isinstance(message, dict):
            if shared_ctx:
                message = {**message, "context": _merge(shared_ctx, message.get("context"))}
            if sent_at is not None and message.get("sentAt") is None:
                message = {**message, "sentAt": sent_at}
        try:
            items.append(segment_to_native(message, None))
        except EventValidationError as exc:
            items.append(_Rejected(index))
            rejected.append(
                {
                    "index": index,
                    "event_id": _message_id(message),
                    "errors": [e.to_dict() for e in exc.errors],
                }
            )
    return items, rejected


def _message_id(message: Any) -> str | None:
    value = message.get("messageId") if isinstance(message, dict) else None
    return value if isinstance(value, str) else None


def _merge(shared: dict[str, Any], own: Any) -> dict[str, Any]:
    """The batch context under the message's: the message wins, nested objects merge."""
    out = dict(shared)
    for key, value in _dict(own).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


class _Rejected:
    """Placeholder keeping batch positions aligned; validation skips it."""

    def __init__(self, index: int) -> None:
        self.index = index
