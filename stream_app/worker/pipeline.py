"""The processing pipeline, declared in one place. Pure: no Kafka, no Redis.

    decode -> route -> deduplicate -> update_state -> score -> emit

A faust agent (stream_app/worker/agents.py) feeds batches of raw messages in and
performs the I/O of the :class:`BatchResult` that comes out: table writes, one
pipelined Redis write, dead letters, re-keyed events and assignment changes.
A failure in any step for one message becomes a dead letter for that message
only; the visitor's state is left as it was before that message.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream_app.events.validate import EventValidationError, from_json_bytes
from stream_app.store import VisitorWrite
from stream_app.worker import visitor_state as vs
from stream_app.worker.dead_letter import DeadLetter

STEPS = ("decode", "route", "deduplicate", "update_state", "score", "emit")


@dataclass(frozen=True)
class RawMessage:
    key: bytes | None
    value: bytes
    source: str = ""  # topic/partition@offset, for dead letters


@dataclass
class BatchResult:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # visitor_id -> new state
    writes: list[VisitorWrite] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rekeyed: list[tuple[str, bytes]] = field(default_factory=list)  # (visitor_id, payload)
    processed: int = 0
    duplicates: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


StateGetter = Callable[[str], dict[str, Any] | None]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Pipeline:
    """Turns a batch of raw messages into new visitor states and their effects."""

    def __init__(self, *, dedup_window: int = 128, model_version: Callable[[], int] = lambda: 0):
        self.dedup_window = dedup_window
        self.model_version = model_version

    def process(self, messages: Iterable[RawMessage], get_state: StateGetter) -> BatchResult:
        result = BatchResult()
        for msg in messages:
            self._one(msg, get_state, result)
        result.writes = [self.record(state) for state in result.states.values()]
        return result

    # -- steps ---------------------------------------------------------------------------
    def _one(self, msg: RawMessage, get_state: StateGetter, result: BatchResult) -> None:
        step = "decode"
        try:
            event = from_json_bytes(msg.value)
            step = "route"
            vid = event["visitor_id"]
            if msg.key is None or msg.key.decode("utf-8", "replace") != vid:
                # Keyed wrongly: its state lives on another partition. Re-key, lose nothing.
                result.rekeyed.append((vid, msg.value))
                return
            step = "deduplicate"
            current = result.states.get(vid) or get_state(vid) or vs.new_state(vid)
            if vs.already_processed(current, event["event_id"]):
                result.duplicates += 1
                return
            step = "update_state"
            state = copy.deepcopy(current)
            vs.remember(state, event["event_id"], self.dedup_window)
            vs.count_event(state, event)
            step = "score"
            self.score(state, event)
        except EventValidationError as exc:
            reason = "undecodable" if any(e.field == "" for e in exc.errors) else "invalid_event"
            detail = "; ".join(f"{e.field or 'body'}: {e.message}" for e in exc.errors)
            result.dead_letters.append(
                DeadLetter(reason, detail, msg.key, msg.value, msg.source, step)
            )
            return
        except Exception as exc:
            result.dead_letters.append(
                DeadLetter(
                    "processing_error",
                    f"{type(exc).__name__}: {exc}",
                    msg.key,
                    msg.value,
                    msg.source,
                    step,
                )
            )
            return
        result.states[vid] = state
        result.processed += 1
        result.by_type[event["type"]] = result.by_type.get(event["type"], 0) + 1

    def score(self, state: dict[str, Any], event: dict[str, Any]) -> None:
        """Walking skeleton: no persona model yet (issue 4 plugs the mapper in here)."""

    def record(self, state: dict[str, Any]) -> VisitorWrite:
        personas = state.get("personas") or {}
        top = max(personas, key=lambda p: personas[p]) if personas else None
        record = {
            "visitor_id": state["visitor_id"],
            "user_id": state["user_id"],
            "personas": personas,
            "top": {"persona": top, "probability": personas[top]} if top else None,
            "phase": state["phase"],
            "events": state["events"],
            "feedback": state["feedback"],
            "model_version": self.model_version(),
            "updated_at": now_rfc3339(),
            "last_seen": state["last_seen"],
        }
        return VisitorWrite(record, identity=dict(state["identity"]))
