"""One batch of consumed messages, applied exactly once to the visitor states in Redis.

    read the batch's visitor states (one MGET)
      -> the pure pipeline (decode -> route -> deduplicate -> update_state -> score -> emit)
      -> produce its Kafka effects and wait for the broker's acks
      -> commit each visitor with a compare-and-set on its offsets, and record the
         partitions' next offsets in Redis after them (one script call: one round trip)

Effects go to Kafka *before* the states that caused them are stored: a crash in between
replays the messages and sends the effects again, and every consumer of them is
idempotent (event-id de-duplication for re-keyed and forwarded events, merges folded once
per alias, the trainer's event-id filter, assignments are last-value-wins). The other
order would lose them: a replay skips messages its visitor state already contains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from stream_app.store.base import VisitorWrite
from stream_app.store.state_store import (
    REFUSED,
    PackedCommits,
    StateCodec,
    StateStore,
    StoredState,
    VisitorCommit,
)
from stream_app.worker.expiry import last_activity
from stream_app.worker.persona_mix import top_persona
from stream_app.worker.pipeline import (
    BatchResult,
    OffsetsGetter,
    Pipeline,
    RawMessage,
    StateGetter,
)
from stream_app.worker.visitor_state import VisitorState

# Messages computed between two turns of the event loop. The batch being applied meanwhile
# moves one hop per turn (effects handed to the producer, its request written, the acks,
# the commit script sent, its reply): at 64 (≈5 ms a turn) applying a batch took ≈55 ms and
# p99 event-to-Redis was 474 ms at 6,800 events/s; at 4 it is ≈110-130 ms (bench_engine),
# for ≈1 µs per event of extra turns.
YIELD_EVERY = 4

# How the worker's StateStore stores a visitor state.
VISITOR_CODEC = StateCodec(VisitorState.encode, VisitorState.decode)


@dataclass(frozen=True)
class Record:
    """A consumed Kafka record (aiokafka's ConsumerRecord has these attributes)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None  # ms since the epoch


class Consumed(Protocol):
    """A consumed Kafka record: :class:`Record`, or aiokafka's ConsumerRecord as it is."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int | None: ...


Effect = tuple[str, bytes | None, bytes | None]  # (topic, key, value)


class Emitter(Protocol):
    async def send_all(self, effects: list[Effect]) -> None:
        """Produce every effect and return once the broker acknowledged all of them."""


@dataclass
class Outcome:
    result: BatchResult
    messages: int
    conflicts: list[str] = field(default_factory=list)  # visitors refused by the CAS
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # event to Redis, seconds
    effects: dict[str, int] = field(default_factory=dict)  # topic -> messages produced
    redis_seconds: float = 0.0
    pipeline_seconds: float = 0.0
    restarted: bool = False  # Redis restarted since the run_id given: offsets not stored
    consumed_control: int = 0  # of ``messages``, how many came from the control topic

    @property
    def consumed_events(self) -> int:
        return self.messages - self.consumed_control

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.restarted


@dataclass
class Prepared:
    """A batch computed, not yet applied: its new states exist only in memory."""

    records: Sequence[Consumed]
    messages: list[RawMessage]
    result: BatchResult
    stored: dict[str, StoredState]  # the states the batch read (its compare-and-set bases)
    partition_of: dict[str, int]
    pipeline_seconds: float

    def overlay(self) -> dict[str, StoredState]:
        """The visitor states as they are once this batch is applied, for the next batch
        to read instead of Redis while this one is being committed."""
        out = {}
        for vid, state in self.result.states.items():
            offsets = self.result.offsets.get(vid)
            if offsets is not None:
                out[vid] = StoredState(offsets, state, top_persona(state) or "", True)
        return out


@dataclass
class Packed:
    """A prepared batch serialised: the Kafka effects and the commit script's argument."""

    prepared: Prepared
    effects: list[Effect]
    commits: PackedCommits
    next_offsets: dict[tuple[str, int], int]


class BatchProcessor:
    def __init__(
        self,
        pipeline: Pipeline,
        states: StateStore,
        emitter: Emitter,
        *,
        events_topic: str,
        control_topic: str,
        dlq_topic: str,
        assignments_topic: str,
        training_topic: str,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pipeline = pipeline
        self.states = states
        self.emitter = emitter
        self.events_topic = events_topic
        self.control_topic = control_topic
        self.dlq_topic = dlq_topic
        self.assignments_topic = assignments_topic
        self.training_topic = training_topic
        self.ttl_s = ttl_s
        self.clock = clock

    def messages(self, records: Iterable[Consumed]) -> list[RawMessage]:
        return [
            RawMessage(
                r.key,
                r.value,
                f"{r.topic}/{r.partition}@{r.offset}",
                control=r.topic == self.control_topic,
                timestamp=r.timestamp / 1000 if r.timestamp else None,
                offset=r.offset,
            )
            for r in records
        ]

    async def run(self, records: Sequence[Consumed], run_id: str) -> Outcome:
        """Apply ``records``; their partitions' next offsets are stored only if Redis is
        still the instance ``run_id`` (``Outcome.restarted`` otherwise)."""
        return await self.apply(self.pack(await self.prepare(records)), run_id)

    async def prepare(
        self, records: Sequence[Consumed], overlay: Mapping[str, StoredState] | None = None
    ) -> Prepared:
        """Read the batch's visitor states (one MGET) and run the pure pipeline.

        ``overlay``: visitor states newer than Redis's, those of the batch still being
        committed (:meth:`Prepared.overlay`); the compare-and-set of this batch then
        counts on that batch's writes, and is refused if they were not applied."""
        messages = self.messages(records)
        partition_of: dict[str, int] = {}
        for r in records:
            if r.key is not None:
                partition_of.setdefault(r.key.decode("utf-8", "replace"), r.partition)
        stored: dict[str, StoredState] = dict(overlay) if overlay else {}
        stored.update(await self.states.read(v for v in partition_of if v not in stored))
        started = time.perf_counter()
        result, missing = await self._process_yielding(messages, stored)
        while missing:  # a visitor not keyed by its message: read it too, run again
            stored.update(await self.states.read(missing))
            result, missing = await self._process_yielding(messages, stored)
        pipeline_seconds = time.perf_counter() - started
        return Prepared(records, messages, result, stored, partition_of, pipeline_seconds)

    def pack(self, prepared: Prepared) -> Packed:
        """Serialise a prepared batch's effects and commits (synchronously: the states are
        encoded before the next batch is computed)."""
        result = prepared.result
        effects = self.effects(result)
        commits = self.commits(result, prepared.stored, prepared.partition_of)
        next_offsets: dict[tuple[str, int], int] = {}
        for r in prepared.records:
            tp = (r.topic, r.partition)
            next_offsets[tp] = max(next_offsets.get(tp, 0), r.offset + 1)
        return Packed(prepared, effects, self.states.pack(commits), next_offsets)

    async def apply(self, packed: Packed, run_id: str) -> Outcome:
        """Produce the effects (waiting for the acks), then commit the states and the
        partitions' next offsets."""
        prepared, effects = packed.prepared, packed.effects
        await self.emitter.send_all(effects)
        started = time.perf_counter()
        replies, stored = await self.states.commit_with_offsets(
            packed.commits, packed.next_offsets, run_id
        )
        conflicts = [vid for vid, r in replies.items() if r == REFUSED]
        restarted = stored is False
        done = self.clock()
        redis_seconds = time.perf_counter() - started
        messages = prepared.messages
        latencies = [
            max(0.0, done - m.timestamp) for m in messages if m.timestamp and not m.control
        ]
        counted: dict[str, int] = {}
        for topic, _, _ in effects:
            counted[topic] = counted.get(topic, 0) + 1
        return Outcome(
            prepared.result,
            len(messages),
            conflicts,
            packed.next_offsets,
            latencies,
            counted,
            redis_seconds,
            prepared.pipeline_seconds,
            restarted,
            sum(1 for m in messages if m.control),
        )

    def _process(
        self, messages: list[RawMessage], stored: Mapping[str, StoredState]
    ) -> tuple[BatchResult, set[str]]:
        get_state, applied, missing = self._getters(stored)
        return self.pipeline.process(messages, get_state, applied), missing

    async def _process_yielding(
        self, messages: list[RawMessage], stored: Mapping[str, StoredState]
    ) -> tuple[BatchResult, set[str]]:
        """:meth:`_process`, giving the event loop back every YIELD_EVERY messages:
        the batch being applied meanwhile (acks, the commit script) then finishes while
        this one computes instead of after it."""
        get_state, applied, missing = self._getters(stored)
        pipeline = self.pipeline
        result = pipeline.begin(applied)
        for i, msg in enumerate(messages, 1):
            pipeline.feed(msg, get_state, result)
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        return pipeline.finish(result), missing

    @staticmethod
    def _getters(
        stored: Mapping[str, StoredState],
    ) -> tuple[StateGetter, OffsetsGetter, set[str]]:
        """The pipeline's view of ``stored``, and the set it fills with the visitors it
        asked for that were not read."""
        missing: set[str] = set()

        def get_state(vid: str) -> VisitorState | None:
            found = stored.get(vid)
            if found is None:
                missing.add(vid)
                return None
            return found.state

        def applied(vid: str) -> tuple[int, int]:
            found = stored.get(vid)
            if found is None:
                missing.add(vid)
                return (-1, -1)
            return found.offsets

        return get_state, applied, missing

    def effects(self, result: BatchResult) -> list[Effect]:
        out: list[Effect] = []
        for dead in result.dead_letters:
            out.append((self.dlq_topic, dead.key, dead.to_json_bytes()))
        for vid, payload in result.rekeyed:
            out.append((self.events_topic, vid.encode(), payload))
        for canonical, state, kpi in result.merges:
            doc = {
                "op": "merge",
                "visitor_id": canonical,
                "state": state.to_doc(),
                "pending_kpi": kpi,
            }
            out.append((self.control_topic, canonical.encode(), orjson.dumps(doc)))
        for canonical, event in result.forwards:
            doc = {"op": "event", "visitor_id": canonical, "event": event}
            out.append((self.control_topic, canonical.encode(), orjson.dumps(doc)))
        now = self.clock()
        for target in result.forget_requests:
            forget = {"op": "forget", "visitor_id": target, "at": now}
            out.append((self.control_topic, target.encode(), orjson.dumps(forget)))
        for example in result.training:
            out.append((self.training_topic, b"trainer", orjson.dumps(example)))
        for vid, doc in result.assignments:
            out.append((self.assignments_topic, vid.encode(), orjson.dumps(doc)))
        for vid in result.forgotten:
            out.append((self.assignments_topic, vid.encode(), None))  # tombstone
        return out

    def commits(
        self,
        result: BatchResult,
        stored: Mapping[str, StoredState],
        partition_of: Mapping[str, int],
    ) -> list[VisitorCommit]:
        writes: dict[str, VisitorWrite] = {w.visitor_id: w for w in result.writes}
        forgotten = set(result.forgotten)
        out = []
        for vid, state in result.states.items():
            offsets = result.offsets.get(vid)
            if offsets is None:  # no offset (not from Kafka): nothing to compare-and-set
                continue
            base = stored.get(vid) or StoredState()
            persist = state.opted_out
            at = last_activity(state)
            expire_at = None if persist else (at if at is not None else self.clock()) + self.ttl_s
            out.append(
                VisitorCommit(
                    vid,
                    partition_of.get(vid, 0),
                    base,
                    offsets,
                    state,
                    top=top_persona(state) or "",
                    write=writes.get(vid),
                    forget=vid in forgotten,
                    persist=persist,
                    expire_at=expire_at,
                    user_id=base.state.user_id if base.state is not None else None,
                )
            )
        return out
