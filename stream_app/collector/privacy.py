"""The client IP is personal data: used at the edge, not passed on (unless configured).

The collector uses the request's address for rate limits (and location) and then drops
``context.ip`` from every event before it goes to Kafka, so it reaches neither the events
topic, nor the worker's state, nor Redis. ``PERSONA_KEEP_CLIENT_IP=true`` keeps it.
"""

from __future__ import annotations

from typing import Any


def without_client_ip(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with ``context.ip`` removed (an emptied ``context`` is removed too)."""
    out = []
    for event in events:
        context = event.get("context")
        if isinstance(context, dict) and "ip" in context:
            rest = {k: v for k, v in context.items() if k != "ip"}
            event = {k: v for k, v in event.items() if k != "context"}
            if rest:
                event["context"] = rest
        out.append(event)
    return out
