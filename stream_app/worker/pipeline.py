"""The processing pipeline, declared in one place. Pure: no Kafka, no Redis.

    decode -> route -> deduplicate -> update_state -> score -> emit

The batch processor (stream_app/worker/batch.py) feeds batches of raw messages in, with
the visitors' typed states (:class:`~stream_app.worker.visitor_state.VisitorState`) read
from Redis, and performs the I/O of the :class:`BatchResult` that comes out: the Kafka
effects (dead letters, re-keyed events, merges and forwards, training examples, assignment
changes), then one commit script for the states, records and audiences.
A failure in any step for one message becomes a dead letter for that message only; the
visitor's state stays as it was before that message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from stream_app.events.validate import EventValidationError, from_json_bytes
from stream_app.store import VisitorWrite
from stream_app.worker import identity
from stream_app.worker import visitor_state as vs
from stream_app.worker.dead_letter import DeadLetter
from stream_app.worker.feedback import kpi_increments
from stream_app.worker.model_holder import ModelHolder
from stream_app.worker.retargeting import changed, next_assignment
from stream_app.worker.unlabelled import UnlabelledLearning
from stream_app.worker.visitor_state import VisitorState

STEPS = ("decode", "route", "deduplicate", "update_state", "score", "emit")
CONTROL_FORGET = "forget"


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 µs more per message
class RawMessage:
    key: bytes | None
    value: bytes | None
    source: str = ""  # topic/partition@offset, for dead letters
    control: bool = False  # from the internal control topic (forget requests)
    timestamp: float | None = None  # the Kafka record's timestamp (s since the epoch)
    offset: int = -1  # the Kafka offset (-1: unknown, never skipped as a replay)


@dataclass
class BatchResult:
    states: dict[str, VisitorState] = field(default_factory=dict)  # visitor_id -> new state
    forgotten: list[str] = field(default_factory=list)
    writes: list[VisitorWrite] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rekeyed: list[tuple[str, bytes]] = field(default_factory=list)  # (visitor_id, payload)
    # (canonical, state, satisfaction counted so far: it travels with the state)
    merges: list[tuple[str, VisitorState, list[tuple[str, str, float]]]] = field(
        default_factory=list
    )
    forwards: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (canonical, event)
    merged_away: list[str] = field(default_factory=list)
    emit_errors: list[str] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)
    assignments: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    kpi: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    processed: int = 0
    duplicates: int = 0
    forgotten_discarded: int = 0  # sent before their visitor was forgotten: dropped
    opted_out: int = 0  # events of visitors who opted out: dropped, not profiled
    replayed: int = 0  # at or below the visitor's applied offset: applied already, skipped
    by_type: dict[str, int] = field(default_factory=dict)
    # visitor_id -> (events, control) offsets of the last messages applied to its new state
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    forget_requests: list[str] = field(default_factory=list)  # ids to forget via control
    opted_out_ids: list[str] = field(default_factory=list)  # markers that never expire


StateGetter = Callable[[str], VisitorState | None]
OffsetsGetter = Callable[[str], tuple[int, int]]
NO_OFFSETS = (-1, -1)
FORGOTTEN = VisitorState("")  # sentinel: the message must be dropped


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Pipeline:
    """Turns a batch of raw messages into new visitor states and their effects."""

    def __init__(
        self,
        model: ModelHolder,
        *,
        dedup_window: int = 128,
        audience_threshold: float = 0.5,
        hysteresis: float = 0.1,
        hash_pii: bool = True,
        enrich: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        unlabelled: UnlabelledLearning | None = None,
    ) -> None:
        self.model = model
        # Soft examples of unlabelled visitors for the trainer (None: labels only).
        self.unlabelled = unlabelled
        # One place to enrich a decoded event before routing (e.g. geo's fill_location).
        self.enrich = enrich
        self._applied: OffsetsGetter | None = None
        self.dedup_window = dedup_window
        self.audience_threshold = audience_threshold
        self.hysteresis = hysteresis
        self.hash_pii = hash_pii

    def process(
        self,
        messages: Iterable[RawMessage],
        get_state: StateGetter,
        applied: OffsetsGetter | None = None,
    ) -> BatchResult:
        """``applied(visitor_id)``: the offsets of the last messages applied to the stored
        state; a message at or below them is a replay and is skipped."""
        result = self.begin(applied)
        for msg in messages:
            self.feed(msg, get_state, result)
        return self.finish(result)

    # The same in three parts, for a caller that gives the event loop back in between.
    def begin(self, applied: OffsetsGetter | None = None) -> BatchResult:
        self._applied = applied
        return BatchResult()

    def feed(self, msg: RawMessage, get_state: StateGetter, result: BatchResult) -> None:
        if msg.control:
            self._control(msg, get_state, result)
        else:
            self._one(msg, get_state, result)

    def finish(self, result: BatchResult) -> BatchResult:
        updated_at = now_rfc3339()  # one clock read per batch: the batch is written at once
        for vid, state in result.states.items():
            if not state.is_visitor:
                continue
            try:
                self._emit(vid, state, result, updated_at)
            except Exception as exc:  # one broken state must not stop the stream
                result.emit_errors.append(f"{vid}: {type(exc).__name__}: {exc}")
        return result

    # -- offsets -------------------------------------------------------------------------
    def _offsets(self, vid: str, result: BatchResult) -> tuple[int, int]:
        found = result.offsets.get(vid)
        if found is not None:
            return found
        return self._applied(vid) if self._applied else NO_OFFSETS

    def _replayed(self, vid: str, msg: RawMessage, result: BatchResult) -> bool:
        if msg.offset < 0:
            return False
        if msg.offset <= self._offsets(vid, result)[1 if msg.control else 0]:
            result.replayed += 1
            return True
        return False

    def _put(self, vid: str, state: VisitorState, msg: RawMessage, result: BatchResult) -> None:
        """The visitor's new state, and the offset of the message that made it."""
        result.states[vid] = state
        if msg.offset >= 0:
            e, c = self._offsets(vid, result)
            result.offsets[vid] = (
                (e, max(c, msg.offset))
                if msg.control
                else (
                    max(e, msg.offset),
                    c,
                )
            )

    # -- steps ---------------------------------------------------------------------------
    def _control(self, msg: RawMessage, get_state: StateGetter, result: BatchResult) -> None:
        """Internal messages keyed by a visitor: forget, merge (identity) and forwarded events."""
        try:
            doc = orjson.loads(msg.value or b"")
            op, target = doc["op"], doc["visitor_id"]
            assert op in (CONTROL_FORGET, "merge", "event") and isinstance(target, str)
        except Exception:
            result.dead_letters.append(
                DeadLetter(
                    "invalid_control",
                    "not a control message",
                    msg.key,
                    msg.value or b"",
                    msg.source,
                    "route",
                )
            )
            return
        if self._replayed(target, msg, result):
            return
        if op == CONTROL_FORGET:
            # A marker, not nothing: an event sent before the DELETE but consumed after it
            # (another topic, so no order between them) must not bring the visitor back.
            at = doc.get("at", msg.timestamp)
            at = float(at) if isinstance(at, int | float) else 0.0
            current = result.states.get(target) or get_state(target)
            if current is not None and current.opted_out:
                marker = vs.opted_out_marker(target, max(at, current.forgotten_at or 0.0))
            else:
                marker = vs.forgotten_marker(target, at)
            self._put(target, marker, msg, result)
            result.forgotten.append(target)
        elif op == "merge":
            current = self._live_state(target, msg, get_state, result)
            if current is FORGOTTEN:
                return
            incoming = VisitorState.from_doc(doc["state"])
            if current is None or incoming.visitor_id not in current.aliases:
                # (older messages carried it inside the state)
                pending = doc.get("pending_kpi", doc["state"].get("pending_kpi", []))
                result.kpi.setdefault(target, []).extend(tuple(x) for x in pending)
            merged = identity.merge_into(
                current, target, incoming, self.model.mapper.merge_states, self.dedup_window
            )
            if merged.model:
                merged.personas = self.model.mapper.score(merged.model)
                merged.phase = merged.model["phase"]
            self._put(target, merged, msg, result)
        else:
            event = doc["event"]
            self._one(msg, get_state, result, event=event, as_key=target)

    def _live_state(
        self, vid: str, msg: RawMessage, get_state: StateGetter, result: BatchResult
    ) -> VisitorState | None:
        """The visitor's state; ``None`` if there is none (or it was forgotten before this
        message was sent); ``FORGOTTEN`` if the message was sent before the forget."""
        current = result.states.get(vid) or get_state(vid)
        if current is None or current.forgotten_at is None:
            return current
        if current.opted_out:
            result.opted_out += 1
            return FORGOTTEN
        if msg.timestamp is not None and msg.timestamp <= current.forgotten_at:
            result.forgotten_discarded += 1
            return FORGOTTEN
        return None

    def _one(
        self,
        msg: RawMessage,
        get_state: StateGetter,
        result: BatchResult,
        event: dict[str, Any] | None = None,
        as_key: str | None = None,
    ) -> None:
        step = "decode"
        payload = msg.value or b""
        try:
            if event is None:
                event = from_json_bytes(msg.value, hash_pii=self.hash_pii)
                if self.enrich is not None:
                    event = self.enrich(event)
                step = "route"
                vid = event["visitor_id"]
                if msg.key is None or msg.key.decode("utf-8", "replace") != vid:
                    # Keyed wrongly: its state lives on another partition. Re-key, lose nothing.
                    result.rekeyed.append((vid, payload))
                    return
            else:
                vid = as_key or event["visitor_id"]
            if self._replayed(vid, msg, result):
                return
            if event["type"] == "consent":
                self._consent(vid, event, msg, get_state, result)
                return
            if event["type"] == "label":
                self.model.mapper.check_persona(event["persona"])
            step = "deduplicate"
            found = self._live_state(vid, msg, get_state, result)
            if found is FORGOTTEN:
                return
            current = found or vs.new_state(vid)
            short = vs.short_id(event["event_id"])
            if vs.already_processed(current, short):
                result.duplicates += 1
                return
            if current.merged_into:
                # Merged into a user's state: that partition processes it. The marker
                # notes the activity, so it does not expire while the visitor is active.
                result.forwards.append((current.merged_into, event))
                if event["ts"] > (current.last_seen or ""):
                    touched = current.copy_for_update()
                    touched.last_seen = event["ts"]
                    self._put(vid, touched, msg, result)
                return
            step = "update_state"
            state = current.copy_for_update()
            vs.remember(state, short, self.dedup_window)
            vs.count_event(state, event)
            step = "score"
            self._score(state, event, result)
        except EventValidationError as exc:
            reason = "undecodable" if any(e.field == "" for e in exc.errors) else "invalid_event"
            detail = "; ".join(f"{e.field or 'body'}: {e.message}" for e in exc.errors)
            result.dead_letters.append(
                DeadLetter(reason, detail, msg.key, payload, msg.source, step)
            )
            return
        except ValueError as exc:  # UnknownPersonaError among others
            known = type(exc).__name__ == "UnknownPersonaError"
            reason = "unknown_persona" if known else "invalid_value"
            result.dead_letters.append(
                DeadLetter(reason, str(exc), msg.key, payload, msg.source, step)
            )
            return
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            result.dead_letters.append(
                DeadLetter("processing_error", detail, msg.key, payload, msg.source, step)
            )
            return
        if event["type"] == "identify" and not as_key and not state.aliases:
            # Hand this visitor's state to the user's canonical state; keep a marker here.
            canonical = identity.canonical_key(event["user_id"])
            kpi = result.kpi.pop(vid, [])  # satisfaction counted so far travels with the state
            result.merges.append((canonical, state, kpi))
            self._put(vid, identity.marker(state, canonical), msg, result)
            result.merged_away.append(vid)
        else:
            self._put(vid, state, msg, result)
        result.processed += 1
        result.by_type[event["type"]] = result.by_type.get(event["type"], 0) + 1

    def _consent(
        self,
        vid: str,
        event: dict[str, Any],
        msg: RawMessage,
        get_state: StateGetter,
        result: BatchResult,
    ) -> None:
        """``opt_out`` forgets the visitor everywhere (like DELETE) and leaves a marker that
        does not expire; ``opt_in`` lifts it. Never evidence for the mapper."""
        current = result.states.get(vid) or get_state(vid)
        at = msg.timestamp if msg.timestamp is not None else time.time()
        if event["status"] == "opt_out":
            if current is not None and current.forgotten_at is None:
                # The merged user and the other ids merged into it go too, as with DELETE.
                others = [current.merged_into] if current.merged_into else []
                others += [a for a in current.aliases if a != vid]
                result.forget_requests.extend(others)
            self._put(vid, vs.opted_out_marker(vid, at), msg, result)
            result.forgotten.append(vid)
            result.opted_out_ids.append(vid)
        elif current is not None and current.opted_out:
            # Profiled afresh from now on; what was sent while opted out stays dropped.
            self._put(vid, vs.forgotten_marker(vid, at), msg, result)
        result.processed += 1
        result.by_type["consent"] = result.by_type.get("consent", 0) + 1

    def _score(self, state: VisitorState, event: dict[str, Any], result: BatchResult) -> None:
        mapper = self.model.mapper
        model_state = state.model or mapper.new_state()
        model_state, out = mapper.observe(model_state, event)
        state.model = model_state
        state.personas = out["personas"]
        state.phase = out["phase"]
        kind = event["type"]
        if kind == "feedback":
            state.feedback[event["kind"]] = event["score"]
            top = out["top"]["persona"]
            result.kpi.setdefault(state.visitor_id, []).extend(
                kpi_increments(event["kind"], event["score"], top, out["phase"])
            )
        elif kind == "identify":
            for trait in ("email_sha256", "phone_sha256"):
                if trait in event.get("traits", {}):
                    state.identity[trait] = event["traits"][trait]
        elif kind == "label":
            result.training.append(
                {
                    "visitor_id": state.visitor_id,
                    "event_id": event["event_id"],
                    "persona": event["persona"],
                    "weight": event.get("weight", 1.0),
                    "source": event["source"],
                    "state": model_state,
                }
            )
            # The trainer takes back what the visitor taught unlabelled; only once.
            state.model = mapper.settled(model_state)
        if self.unlabelled is not None and kind != "label":
            state.model, soft = self.unlabelled.example(mapper, state.model)
            if soft is not None:
                result.training.append(
                    {
                        "visitor_id": state.visitor_id,
                        "event_id": "soft:" + event["event_id"],
                        "soft": soft,
                    }
                )

    def _emit(
        self, vid: str, state: VisitorState, result: BatchResult, updated_at: str | None = None
    ) -> None:
        mapper = self.model.mapper
        # A state not scored in this batch (the probabilities are not stored): score it.
        if not state.personas:
            state.personas = mapper.score(state.model or mapper.new_state())
        state.phase = state.phase or "awareness"
        record = self.record(state, updated_at)
        result.writes.append(
            VisitorWrite(
                record,
                kpi=tuple(result.kpi.get(vid, ())),
                identity=dict(state.identity),
                aliases=tuple(state.aliases),
            )
        )
        assignment = next_assignment(
            state.assigned, state.personas, self.audience_threshold, self.hysteresis
        )
        if changed(state.assigned, assignment):
            state.assigned = assignment
            result.assignments.append(
                (
                    vid,
                    {
                        **record,
                        "audiences": assignment["audiences"],
                        "assigned_persona": assignment["top"],
                    },
                )
            )

    def record(self, state: VisitorState, updated_at: str | None = None) -> dict[str, Any]:
        """The lookup JSON of INTERFACES.md 2.1 (plus ``last_seen``, ``merged_visitor_ids``)."""
        personas = state.personas or {}
        top = max(personas, key=lambda p: personas[p])
        return {
            "visitor_id": state.visitor_id,
            "user_id": state.user_id,
            "personas": {p: round(q, 6) for p, q in personas.items()},
            "top": {"persona": top, "probability": round(personas[top], 6)},
            "phase": state.phase,
            "events": state.events,
            "feedback": state.feedback_record(),
            "model_version": self.model.version,
            "updated_at": updated_at or now_rfc3339(),
            "last_seen": state.last_seen,
            "merged_visitor_ids": list(state.aliases),
        }
