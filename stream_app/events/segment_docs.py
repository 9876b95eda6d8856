"""JSON Schemas of the Segment shapes the collector maps (``segment.py``), for the OpenAPI.

They say what the mapping really accepts, built from the same rules as the native events
(``schema.py``: ids, URLs, timestamps, e-mail and phone). Where the mapping is lenient the
schema is too: ``context``, ``properties`` of a generic ``track`` and ``traits`` may be any
JSON value (a non-object is read as ``{}``). Only the primary field of a fallback is described
(``timestamp``; ``originalTimestamp``, ``receivedAt`` and ``sentAt`` are read when it is
absent; ``context.page.url`` before ``properties.url``).
"""

from __future__ import annotations

from typing import Any, get_args

from stream_app.events.schema import (
    ACTIONS,
    CHANNELS,
    EMAIL_PATTERN,
    ID_PATTERN,
    LABEL_SOURCES,
    MAX_COMMENT,
    MAX_DWELL_MS,
    PHONE_PATTERN,
    SCORE_RANGES,
    TS_PATTERN,
    URL_PATTERN,
    ConsentSource,
    ConsentStatus,
    FeedbackKind,
)
from stream_app.events.segment import CONSENT_EVENT

ID: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": ID_PATTERN}
TS: dict[str, Any] = {
    "type": "string",
    "pattern": TS_PATTERN,
    "description": "RFC 3339 with an offset, at most 24 hours ahead (originalTimestamp, "
    "receivedAt, sentAt are read when absent)",
}
URL: dict[str, Any] = {"type": "string", "maxLength": 8192, "pattern": URL_PATTERN}
TEXT: dict[str, Any] = {"type": "string", "maxLength": 2048}
CONTEXT: dict[str, Any] = {
    "description": "Segment context; read when an object (anything else counts as {})",
    "properties": {
        "ip": {"type": "string", "maxLength": 64},
        "userAgent": {"type": "string", "maxLength": 1024},
        "locale": {"type": "string", "maxLength": 35},
        "location": {
            "description": "country is kept when a two-letter code, dropped otherwise",
            "properties": {
                "region": {"type": "string", "maxLength": 128},
                "city": {"type": "string", "maxLength": 128},
            },
        },
    },
}


def _message(call: str, properties: dict[str, Any], *, user_required: bool = False) -> dict:
    required = ["messageId", "timestamp", "userId" if user_required else "anonymousId"]
    return {
        "type": "object",
        "required": required,
        "properties": {
            "messageId": ID,
            "anonymousId": ID,
            "userId": ID,
            "timestamp": TS,
            "context": CONTEXT,
            **properties,
        },
        "description": f"Segment {call} call (anonymousId, else userId, is the visitor id)",
    }


PAGE: dict[str, Any] = _message(
    "page",
    {
        "name": TEXT,
        "properties": {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": URL,
                "referrer": {"type": "string", "maxLength": 8192, "pattern": f"^$|{URL_PATTERN}"},
                "title": TEXT,
                "dwell_ms": {"type": "integer", "minimum": 0, "maximum": MAX_DWELL_MS},
            },
        },
    },
)
PAGE["required"] = [*PAGE["required"], "properties"]


def _track(event: dict[str, Any], properties: dict[str, Any], required: list[str]) -> dict:
    props: dict[str, Any] = {"type": "object", "required": required, "properties": properties}
    message = _message("track", {"event": event, "properties": props})
    message["required"] = [*message["required"], "event", "properties"]
    return message


def _enum(values: Any) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


TRACK_FEEDBACK = _track(
    {"const": "Feedback Submitted"},
    {
        "kind": _enum(get_args(FeedbackKind)),
        "score": {"type": "integer"},
        "touchpoint": TEXT,
        "comment": {"type": "string", "maxLength": MAX_COMMENT},
    },
    ["kind", "score"],
)
TRACK_FEEDBACK["properties"]["properties"]["oneOf"] = [
    {"properties": {"kind": {"const": k}, "score": {"minimum": lo, "maximum": hi}}}
    for k, (lo, hi) in SCORE_RANGES.items()
]
TRACK_CONSENT = _track(
    {"const": CONSENT_EVENT},
    {"status": _enum(get_args(ConsentStatus)), "source": _enum(get_args(ConsentSource))},
    ["status"],
)


def track_label(personas: list[str]) -> dict[str, Any]:
    return _track(
        {"const": "Persona Identified"},
        {
            "persona": _enum(personas),
            "source": _enum(LABEL_SOURCES),
            "weight": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        },
        ["persona", "source"],
    )


TRACK_TOUCHPOINT = _message(
    "track",
    {
        "event": {
            **TEXT,
            "not": {"enum": ["Feedback Submitted", "Persona Identified", CONSENT_EVENT]},
        },
        "properties": {
            "description": "read when an object; channel and action default to other",
            "properties": {
                "channel": _enum(CHANNELS),
                "action": _enum(ACTIONS),
                "campaign": TEXT,
                "value": {"type": "number"},
            },
        },
    },
)
IDENTIFY = _message(
    "identify",
    {
        "traits": {
            "description": "read when an object (else context.traits); email and phone are "
            "SHA-256 hashed at the edge",
            "properties": {
                "email": {"type": ["string", "null"], "pattern": EMAIL_PATTERN},
                "phone": {"type": ["string", "null"], "pattern": PHONE_PATTERN},
            },
        }
    },
    user_required=True,
)


def track(personas: list[str]) -> dict[str, Any]:
    return {"oneOf": [TRACK_TOUCHPOINT, TRACK_FEEDBACK, track_label(personas), TRACK_CONSENT]}


def batch(personas: list[str], max_items: int) -> dict[str, Any]:
    def typed(call: str, schema: dict[str, Any]) -> dict[str, Any]:
        variants = schema.get("oneOf", [schema])
        return {
            "oneOf": [
                {
                    **v,
                    "required": [*v["required"], "type"],
                    "properties": {**v["properties"], "type": {"const": call}},
                }
                for v in variants
            ]
        }

    items = [typed("page", PAGE), typed("track", track(personas)), typed("identify", IDENTIFY)]
    return {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {
                "type": "array",
                "maxItems": max_items,
                "items": {"oneOf": [v for item in items for v in item["oneOf"]]},
            },
            "context": {"description": "merged under each message's context"},
            "sentAt": {"description": "each message's sentAt when it has none"},
        },
    }
