"""When a visitor expires: ``PERSONA_VISITOR_TTL_S`` after its last activity.

The last activity is the newest event time for a visitor (``last_seen``, also kept current
on the marker of a merged visitor while its events are forwarded) and the deletion time
for a forget marker. A state without either is kept. Pure: each batch stores, per visitor,
when that happens (``ps:expiry:*``, see stream_app/store/state_store.py), and the worker
owning the partition expires state, record and audiences together then.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from stream_app.worker.visitor_state import VisitorState


def last_activity(state: VisitorState | None) -> float | None:
    """Seconds since the epoch of the state's last activity, or None if unknown."""
    if not isinstance(state, VisitorState):
        return None
    if state.forgotten_at is not None:
        return float(state.forgotten_at)
    seen = state.last_seen
    if not isinstance(seen, str):
        return None
    try:
        return datetime.fromisoformat(seen).timestamp()
    except ValueError:
        return None


def expired_items(
    items: Iterable[tuple[Any, VisitorState | None]], now: float, ttl_s: float
) -> list[tuple[Any, VisitorState | None]]:
    """The (key, state) pairs whose last activity is more than ``ttl_s`` before ``now``."""
    out = []
    for key, state in items:
        at = last_activity(state)
        if at is not None and now - at > ttl_s:
            out.append((key, state))
    return out
