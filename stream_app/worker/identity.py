"""Identity stitching: every anonymous visitor of one user is merged into one state.

The merged state lives under a *canonical key* derived from the user id
(``user:{user_id}``), so any worker can route to it without a lookup. When visitor v
identifies as user U, v's state travels (a ``merge`` control message keyed by the
canonical key) to the partition owning ``user:U``; v's own state becomes a small
marker, and v's later events are forwarded there (``event`` control messages).
"""

from __future__ import annotations

from typing import Any

from stream_app.worker.visitor_state import FEEDBACK_KINDS, VisitorState, new_state

CANONICAL_PREFIX = "user:"


def canonical_key(user_id: str) -> str:
    return f"{CANONICAL_PREFIX}{user_id}"


def marker(state: VisitorState, canonical: str) -> VisitorState:
    """What stays at the anonymous visitor's partition once it was merged."""
    return VisitorState(
        state.visitor_id,
        recent_ids=state.recent_ids,
        last_seen=state.last_seen,  # kept current while events are forwarded (expiry)
        merged_into=canonical,
    )


def merge_into(
    canonical_state: VisitorState | None,
    canonical: str,
    incoming: VisitorState,
    merge_models: Any,
    dedup_window: int,
) -> VisitorState:
    """Fold a visitor's state into the user's canonical state."""
    base = canonical_state or new_state(canonical)
    if incoming.visitor_id in base.aliases:
        return base  # replayed merge: already folded in
    out = base.copy_for_update()
    out.aliases = sorted({*base.aliases, incoming.visitor_id})
    out.user_id = incoming.user_id or base.user_id
    out.events = base.events + incoming.events
    out.recent_ids = (base.recent_ids + incoming.recent_ids)[-dedup_window:]
    seen = [s for s in (base.first_seen, incoming.first_seen) if s]
    last = [s for s in (base.last_seen, incoming.last_seen) if s]
    out.first_seen = min(seen) if seen else None
    out.last_seen = max(last) if last else None
    feedback = {k: incoming.feedback.get(k) or base.feedback.get(k) for k in FEEDBACK_KINDS}
    out.feedback = {k: v for k, v in feedback.items() if v is not None}
    out.identity = {**base.identity, **incoming.identity}
    if base.model and incoming.model:
        out.model = merge_models(base.model, incoming.model)
    else:
        out.model = base.model or incoming.model
    return out
