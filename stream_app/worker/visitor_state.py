"""The per-visitor state: one typed structure, stored in Redis by the worker.

It holds what the lookup record is built from: counts, identity, the latest feedback,
recent event ids for de-duplication, the assigned audiences and the persona model's own
state (opaque here: the mapper owns what is inside it). The same class describes the
markers a visitor leaves: *forgotten* (a DELETE or a consent opt-out) and *merged* into a
user's state.

One encoding (:meth:`VisitorState.to_doc`): a document with short keys, where every
field at its default is left out, the recent event ids (8 characters each) are one
string, and an assignment whose only audience is its top persona is that persona's
name. The persona probabilities are not stored: they are the model's score, and the
pipeline scores every state it emits afresh. In Redis (:meth:`encode`, orjson) the
visitor id is left out too: the state is always read by it (and a forget marker then
keeps no id). Documents of the older encoding (long keys, as the dict state had them)
are still read.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

FEEDBACK_KINDS = ("nps", "csat", "ces")
SHORT_ID_LEN = 8


@dataclass(slots=True, eq=True)
class VisitorState:
    visitor_id: str
    user_id: str | None = None
    events: int = 0
    recent_ids: list[str] = field(default_factory=list)  # short ids, oldest first
    first_seen: str | None = None  # RFC 3339 of the oldest event
    last_seen: str | None = None  # RFC 3339 of the newest event (or forwarded event)
    feedback: dict[str, Any] = field(default_factory=dict)  # kind -> latest score
    identity: dict[str, str] = field(default_factory=dict)  # hashed traits
    model: Any = None  # the mapper's state (opaque)
    phase: str | None = None
    personas: dict[str, float] | None = None  # the model's score; not stored
    assigned: dict[str, Any] | None = None  # {"top": ..., "audiences": [...]} published
    aliases: list[str] = field(default_factory=list)  # visitor ids merged into this user
    merged_into: str | None = None  # marker: merged into this canonical user key
    forgotten_at: float | None = None  # marker: forgotten then (s since the epoch)
    opted_out: bool = False  # marker: consent opt-out, kept until an opt-in

    # -- kinds ------------------------------------------------------------------------
    @property
    def is_forgotten(self) -> bool:
        return self.forgotten_at is not None

    @property
    def is_visitor(self) -> bool:
        """A visitor with a record, not a marker of a forgotten or merged one."""
        return self.forgotten_at is None and self.merged_into is None

    def copy_for_update(self) -> VisitorState:
        """A copy safe to update: the parts updated in place are copied, the rest is
        shared (the model state is never mutated: the mapper returns a new one)."""
        return VisitorState(
            self.visitor_id,
            self.user_id,
            self.events,
            list(self.recent_ids),
            self.first_seen,
            self.last_seen,
            dict(self.feedback),
            dict(self.identity),
            self.model,
            self.phase,
            self.personas,
            self.assigned,
            list(self.aliases),
            self.merged_into,
            self.forgotten_at,
            self.opted_out,
        )

    def feedback_record(self) -> dict[str, Any]:
        """Every feedback kind, ``None`` for those never given (the record's shape)."""
        fb = self.feedback
        return {kind: fb.get(kind) for kind in FEEDBACK_KINDS}

    # -- the encoding -----------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        """The state as a JSON-ready document with short keys (defaults left out)."""
        doc: dict[str, Any] = {"v": self.visitor_id}
        if self.user_id is not None:
            doc["u"] = self.user_id
        if self.events:
            doc["n"] = self.events
        if self.recent_ids:
            ids = self.recent_ids
            packed = all(len(i) == SHORT_ID_LEN for i in ids)
            doc["r"] = "".join(ids) if packed else ids
        if self.first_seen is not None:
            doc["f"] = self.first_seen
        if self.last_seen is not None:
            doc["l"] = self.last_seen
        fb = {k: v for k, v in self.feedback.items() if v is not None}
        if fb:
            doc["fb"] = fb
        if self.identity:
            doc["id"] = self.identity
        if self.model is not None:
            doc["m"] = self.model
        if self.phase is not None:
            doc["ph"] = self.phase
        if self.assigned is not None:
            top, audiences = self.assigned["top"], self.assigned["audiences"]
            doc["a"] = top if audiences == [top] else [top, audiences]
        if self.aliases:
            doc["al"] = self.aliases
        if self.merged_into is not None:
            doc["mi"] = self.merged_into
        if self.forgotten_at is not None:
            doc["fa"] = self.forgotten_at
        if self.opted_out:
            doc["oo"] = 1
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any], visitor_id: str | None = None) -> VisitorState:
        """``visitor_id``: the id the document was stored under (Redis leaves it out)."""
        if "visitor_id" in doc:
            return cls._from_legacy(doc)
        ids = doc.get("r") or []
        if isinstance(ids, str):
            ids = [ids[i : i + SHORT_ID_LEN] for i in range(0, len(ids), SHORT_ID_LEN)]
        assigned = doc.get("a")
        if isinstance(assigned, str):
            assigned = [assigned, [assigned]]
        return cls(
            doc.get("v") or visitor_id or "",
            doc.get("u"),
            doc.get("n", 0),
            list(ids),
            doc.get("f"),
            doc.get("l"),
            dict(doc.get("fb") or {}),
            dict(doc.get("id") or {}),
            doc.get("m"),
            doc.get("ph"),
            None,
            {"top": assigned[0], "audiences": list(assigned[1])} if assigned else None,
            list(doc.get("al") or []),
            doc.get("mi"),
            doc.get("fa"),
            bool(doc.get("oo")),
        )

    @classmethod
    def _from_legacy(cls, doc: dict[str, Any]) -> VisitorState:
        """A state of the dict encoding (long keys), before this class."""
        forgotten = doc.get("forgotten_at")
        return cls(
            doc["visitor_id"],
            doc.get("user_id"),
            doc.get("events") or 0,
            list(doc.get("recent_ids") or []),
            doc.get("first_seen"),
            doc.get("last_seen"),
            {k: v for k, v in (doc.get("feedback") or {}).items() if v is not None},
            dict(doc.get("identity") or {}),
            doc.get("model"),
            doc.get("phase"),
            doc.get("personas"),
            doc.get("assigned"),
            list(doc.get("aliases") or []),
            doc.get("merged_into"),
            float(forgotten) if isinstance(forgotten, int | float) else None,
            bool(doc.get("opted_out")),
        )

    def encode(self) -> bytes:
        """The state as stored in Redis, under its visitor id (which it leaves out)."""
        doc = self.to_doc()
        del doc["v"]
        return orjson.dumps(doc)

    @classmethod
    def decode(cls, raw: bytes, visitor_id: str) -> VisitorState:
        return cls.from_doc(orjson.loads(raw), visitor_id)


def new_state(visitor_id: str) -> VisitorState:
    return VisitorState(visitor_id)


def short_id(event_id: str) -> str:
    """A compact stand-in for an event id in ``recent_ids``: 48 bits of BLAKE2b in 8
    base64url characters instead of a 36-character UUID (a false duplicate within one
    visitor's window of 64 ids has a chance of about 64 / 2**48)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()


def already_processed(state: VisitorState, short: str) -> bool:
    """``short``: the event id's :func:`short_id`."""
    return short in state.recent_ids


def remember(state: VisitorState, short: str, window: int) -> None:
    """Keep the last ``window`` event ids (their :func:`short_id`) against client retries;
    replays after a crash or a rebalance are skipped by offset before they get here."""
    ids = state.recent_ids
    ids.append(short)
    if len(ids) > window:
        del ids[: len(ids) - window]


def count_event(state: VisitorState, event: dict[str, Any]) -> None:
    state.events += 1
    ts = event["ts"]
    if state.first_seen is None or ts < state.first_seen:
        state.first_seen = ts
    if state.last_seen is None or ts > state.last_seen:
        state.last_seen = ts
    if event.get("user_id"):
        state.user_id = event["user_id"]


def forgotten_marker(visitor_id: str, at: float) -> VisitorState:
    """What stays of a forgotten visitor: its id and when it was forgotten (s since the
    epoch). Messages sent before then are dropped; a later event starts a fresh state."""
    return VisitorState(visitor_id, forgotten_at=at)


def is_forgotten(state: VisitorState) -> bool:
    return state.forgotten_at is not None


def opted_out_marker(visitor_id: str, at: float) -> VisitorState:
    """A visitor who opted out (consent): forgotten, and every later event is dropped
    until an ``opt_in``. Unlike a forget marker it does not expire."""
    return VisitorState(visitor_id, forgotten_at=at, opted_out=True)


def is_opted_out(state: VisitorState) -> bool:
    return state.opted_out
