"""The per-visitor state, stored in Redis by the worker (JSON-serialisable dict).

It holds what the lookup record is built from: counts, identity, the latest
feedback, recent event ids for de-duplication and the persona model's own state.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

FEEDBACK_KINDS = ("nps", "csat", "ces")


def new_state(visitor_id: str) -> dict[str, Any]:
    return {
        "visitor_id": visitor_id,
        "user_id": None,
        "events": 0,
        "recent_ids": [],
        "first_seen": None,
        "last_seen": None,
        "feedback": dict.fromkeys(FEEDBACK_KINDS),
        "identity": {},
        "model": None,
        "phase": None,
        "personas": None,
        "assigned": None,
    }


def copy_for_update(state: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to update: the parts updated in place are copied, the rest is shared.

    The model state is never mutated (the mapper returns a new one), so a shallow copy
    of it is enough; this is ~50x cheaper than ``copy.deepcopy``.
    """
    new = dict(state)
    new["recent_ids"] = list(state["recent_ids"])
    new["feedback"] = dict(state["feedback"])
    new["identity"] = dict(state["identity"])
    return new


def short_id(event_id: str) -> str:
    """A compact stand-in for an event id in ``recent_ids``: 48 bits of BLAKE2b in 8
    base64url characters instead of a 36-character UUID (a false duplicate within one
    visitor's window of 64 ids has a chance of about 64 / 2**48)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()


def already_processed(state: dict[str, Any], short: str) -> bool:
    """``short``: the event id's :func:`short_id`."""
    return short in state["recent_ids"]


def remember(state: dict[str, Any], short: str, window: int) -> None:
    """Keep the last ``window`` event ids (their :func:`short_id`) against client retries;
    replays after a crash or a rebalance are skipped by offset before they get here."""
    ids = state["recent_ids"]
    ids.append(short)
    if len(ids) > window:
        del ids[: len(ids) - window]


def count_event(state: dict[str, Any], event: dict[str, Any]) -> None:
    state["events"] += 1
    ts = event["ts"]
    if state["first_seen"] is None or ts < state["first_seen"]:
        state["first_seen"] = ts
    if state["last_seen"] is None or ts > state["last_seen"]:
        state["last_seen"] = ts
    if event.get("user_id"):
        state["user_id"] = event["user_id"]


def forgotten_marker(visitor_id: str, at: float) -> dict[str, Any]:
    """What stays of a forgotten visitor: its id and when it was forgotten (s since the
    epoch). Messages sent before then are dropped; a later event starts a fresh state."""
    return {"visitor_id": visitor_id, "forgotten_at": at}


def is_forgotten(state: dict[str, Any]) -> bool:
    return "forgotten_at" in state


def opted_out_marker(visitor_id: str, at: float) -> dict[str, Any]:
    """A visitor who opted out (consent): forgotten, and every later event is dropped
    until an ``opt_in``. Unlike a forget marker it does not expire."""
    return {"visitor_id": visitor_id, "forgotten_at": at, "opted_out": True}


def is_opted_out(state: dict[str, Any]) -> bool:
    return bool(state.get("opted_out"))
