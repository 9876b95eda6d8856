"""The batch-native events path: one aiokafka consumer for the events and control topics.

It runs as a task of the faust worker app. Both topics are subscribed by one consumer
with Kafka's *range* assignor, which gives every member the same partition numbers of
topics with the same partition count: events partition p and control partition p (the
same visitor keys) always go to the same worker (co-partitioning).

Positions live in Redis with the states (``StateStore``): on assignment the consumer
seeks every partition to the offset stored there (the beginning when none is), never to
Kafka's committed offset, which it writes only for lag monitoring. On revocation it waits
for the batch in flight to finish (bounded; an abandoned batch is harmless, the
compare-and-set refuses its late writes). A batch refused by the compare-and-set (another
worker wrote its visitors) is read again from its first offset; a Redis that restarted
(and may have lost its last second) sends every partition back to the offsets it kept.

Batches are pipelined, two deep: batch N+1 is fetched, read and computed while batch N's
effects are produced and acknowledged and its states committed (a task). N+1 reads N's
new states from memory (its overlay), not from Redis, and its compare-and-set counts on
them; its effects are produced only once N is applied in full. If N is not (refused,
Redis restarted, an error), N+1 is discarded unproduced and both are read again from
their first offsets. So fetch, decode and compute overlap the Kafka acks and the Redis
round trip, and exactly-once holds as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from stream_app.kafka_partitioner import CachedPartitioner
from stream_app.store.state_store import StateStore
from stream_app.worker.batch import BatchProcessor, Consumed, Effect, Outcome, Prepared

log = logging.getLogger(__name__)


class KafkaEmitter:
    """Produces a batch's effects and waits for every acknowledgement (acks=all)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, tuple[float, list[int]]] = {}  # per topic: when, which
        self._place = CachedPartitioner()

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=1,  # the batch waits for the acks anyway
            max_batch_size=1024 * 1024,
            request_timeout_ms=15000,
        )
        await self.producer.start()

    async def send_all(self, effects: list[Effect]) -> None:
        """One record batch per partition instead of one ``send`` per effect (each cost
        ≈40 µs of Python in aiokafka's accumulator). Keys are placed as ``send`` places them
        (the cached murmur2 of ``kafka_partitioner``); effects of one partition keep their
        order."""
        if not effects:
            return
        producer = self.producer
        assert producer is not None, "KafkaEmitter.start() first"
        batches: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        for topic, key, value in effects:
            partitions = await self._partitions_of(topic)
            partition = self._place(key, partitions, partitions)
            tp = (topic, partition)
            batch = batches.get(tp)
            if batch is None:
                batch = batches[tp] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is not None:
                continue
            # full: send it and start another (a record larger than a whole batch goes
            # on its own through send, which refuses it if the broker would)
            futures.append(await producer.send_batch(batches.pop(tp), topic, partition=partition))
            batch = batches[tp] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(
                    await producer.send(topic, value=value, key=key, partition=partition)
                )
        for (topic, partition), batch in batches.items():
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)

    async def _partitions_of(self, topic: str) -> list[int]:
        """The topic's partitions, from the producer's metadata, looked at again every
        minute (partitions added to a topic are then used, as ``send`` would)."""
        assert self.producer is not None
        now = time.monotonic()
        cached = self._partitions.get(topic)
        if cached is None or now - cached[0] > 60.0:
            cached = self._partitions[topic] = (
                now,
                sorted(await self.producer.partitions_for(topic)),
            )
        return cached[1]

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None


class _Listener(ConsumerRebalanceListener):
    def __init__(self, owner: EventsConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner.on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.owner.on_assigned(list(assigned))


class EventsConsumer:
    def __init__(
        self,
        processor: BatchProcessor,
        states: StateStore,
        *,
        bootstrap: str,
        group_id: str,
        topics: tuple[str, str],
        batch_max_events: int,
        batch_within_ms: int,
        session_timeout_s: float,
        on_outcome: Callable[[Outcome], None] = lambda outcome: None,
        revoke_wait_s: float = 5.0,
    ) -> None:
        self.processor = processor
        self.states = states
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topics = topics
        self.batch_max_events = batch_max_events
        self.batch_within_ms = batch_within_ms
        self.session_timeout_s = session_timeout_s
        self.on_outcome = on_outcome
        self.revoke_wait_s = revoke_wait_s
        self.consumer: AIOKafkaConsumer | None = None
        self.lock = asyncio.Lock()  # held while a batch is applied
        self.run_id = ""  # the Redis instance the current positions were taken from
        self.committed: dict[TopicPartition, int] = {}  # next offset stored, per partition
        self.assigned: set[TopicPartition] = set()
        self.batches = 0
        self.refused = 0  # batches refused by the compare-and-set (read again)
        self.redis_restarts = 0
        # The batch being applied while the next one is computed: (its prepared form,
        # the task applying it, its records).
        self.inflight: tuple[Prepared, asyncio.Future[Outcome], list[Consumed]] | None = None
        self.generation = 0  # bumped by every rebalance: computed batches are discarded
        self._delay = 0.1  # back-off after a failed batch

    # -- rebalance -----------------------------------------------------------------------
    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        self.generation += 1
        try:
            async with asyncio.timeout(self.revoke_wait_s):
                async with self.lock:  # the batch being computed has finished
                    if self.inflight is not None and self.consumer is not None:
                        await self._finish(self.consumer)  # and the one being applied
        except TimeoutError:
            log.warning("a batch was still in flight at revocation; abandoned (CAS-guarded)")
        for tp in revoked:
            self.committed.pop(tp, None)
        self.assigned -= set(revoked)

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        self.generation += 1
        self.assigned = set(assigned)
        if assigned:
            await self._seek_to_stored(assigned)
        log.info("events consumer assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))

    async def _seek_to_stored(self, tps: list[TopicPartition]) -> None:
        assert self.consumer is not None
        run_id, stored = await self._redis("read offsets", self.states.read_offsets)
        self.run_id = run_id
        fresh = []
        for tp in tps:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                fresh.append(tp)
            else:
                self.consumer.seek(tp, offset)
                self.committed[tp] = offset
        if fresh:
            await self.consumer.seek_to_beginning(*fresh)

    async def _redis(self, what: str, action: Callable[[], Any]) -> Any:
        delay = 0.1
        while True:
            try:
                return await action()
            except Exception as exc:
                log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- the loop ------------------------------------------------------------------------
    def make_consumer(self) -> AIOKafkaConsumer:
        session_ms = int(self.session_timeout_s * 1000)
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(1000, session_ms // 4),
            max_poll_interval_ms=max(300_000, session_ms * 2),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=max(1, self.batch_within_ms),
        )

    async def run(self) -> None:
        while True:
            self.consumer = self.make_consumer()
            try:
                await self.consumer.start()
                self.consumer.subscribe(list(self.topics), listener=_Listener(self))
                await self._loop(self.consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("events consumer failed; restarting in 2s")
                await asyncio.sleep(2.0)
            finally:
                with contextlib.suppress(Exception):
                    await self.consumer.stop()

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        last_commit = time.monotonic()
        try:
            while True:
                fetched = await consumer.getmany(
                    timeout_ms=self.batch_within_ms, max_records=self.batch_max_events
                )
                async with self.lock:
                    if fetched:
                        await self._step(consumer, fetched)
                    elif self.inflight is not None:
                        await self._finish(consumer)
                if time.monotonic() - last_commit >= 1.0:
                    last_commit = time.monotonic()
                    await self._commit_to_kafka(consumer)
        finally:
            self._drop_inflight()

    async def _step(self, consumer: AIOKafkaConsumer, fetched: dict[Any, list[Any]]) -> None:
        """Compute this batch while the previous one is being applied (its effects acked,
        its states committed), then start applying this one.

        The batch reads the previous batch's new states from memory (its *overlay*) and
        its compare-and-set counts on them: if the previous batch is not applied in full
        (refused, Redis restarted, an error), this one is discarded before any of its
        effects are produced and both are read again from the first offset."""
        owned = consumer.assignment()
        records: list[Consumed] = [r for tp, rs in fetched.items() if tp in owned for r in rs]
        if not records:
            return
        generation = self.generation
        overlay = self.inflight[0].overlay() if self.inflight is not None else None
        prepared: Prepared | None = None
        try:
            prepared = await self.processor.prepare(records, overlay)
        except Exception as exc:
            log.warning("batch failed (%r); retrying in %.1fs", exc, self._delay)
        moved = await self._finish(consumer)
        if prepared is None or moved is not None or generation != self.generation:
            # Not applied: computed on states that were not all applied, or on a failed
            # read, or before a rebalance. Read it again (after the previous batch).
            self._rewind(consumer, records, skip=moved or set())
            if prepared is None:
                await self._back_off()
            return
        packed = self.processor.pack(prepared)  # encoded now, before anything else runs
        task = asyncio.ensure_future(self.processor.apply(packed, self.run_id))
        self.inflight = (prepared, task, records)

    async def _finish(self, consumer: AIOKafkaConsumer) -> set[TopicPartition] | None:
        """Wait for the batch being applied. None if it was applied in full; otherwise
        the partitions already sent back to read it again."""
        if self.inflight is None:
            return None
        _, task, records = self.inflight
        self.inflight = None
        try:
            outcome = await task
        except Exception as exc:
            log.warning("batch failed (%r); retrying in %.1fs", exc, self._delay)
            moved = self._rewind(consumer, records)
            await self._back_off()
            return moved
        self.batches += 1
        self._delay = 0.1
        if outcome.restarted:
            self.redis_restarts += 1
            log.warning("Redis restarted: every partition goes back to the offsets it kept")
            await self._seek_to_stored(sorted(consumer.assignment()))
            return set(consumer.assignment())
        if outcome.conflicts:
            self.refused += 1
            log.info(
                "%d visitors were written by another worker since read; reading again",
                len(outcome.conflicts),
            )
            return self._rewind(consumer, records)
        for (topic, partition), offset in outcome.next_offsets.items():
            self.committed[TopicPartition(topic, partition)] = offset
        self.on_outcome(outcome)  # a refused batch is counted when it is applied
        return None

    def _rewind(
        self,
        consumer: AIOKafkaConsumer,
        records: list[Consumed],
        skip: set[TopicPartition] | frozenset[TopicPartition] = frozenset(),
    ) -> set[TopicPartition]:
        """Read ``records`` again from each partition's first offset among them (except
        the partitions in ``skip``, sent back further already); returns the partitions."""
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        owned = consumer.assignment()
        for tp, offset in first.items():
            if tp in owned and tp not in skip:
                consumer.seek(tp, offset)
        return set(first)

    async def _back_off(self) -> None:
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, 2.0)

    def _drop_inflight(self) -> None:
        if self.inflight is not None:
            self.inflight[1].cancel()
            self.inflight = None

    async def _commit_to_kafka(self, consumer: AIOKafkaConsumer) -> None:
        """Kafka's committed offsets mirror Redis's, for lag monitoring only."""
        owned = consumer.assignment()
        offsets = {tp: o for tp, o in self.committed.items() if tp in owned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except Exception as exc:
            log.debug("could not commit offsets to Kafka (%r)", exc)

    async def lag(self) -> dict[tuple[str, int], int]:
        """Messages behind per owned partition: log end minus the offset stored."""
        consumer = self.consumer
        if consumer is None:
            return {}
        tps = sorted(consumer.assignment())
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        missing = [tp for tp in tps if tp not in self.committed]
        earliest = await consumer.beginning_offsets(missing) if missing else {}
        out = {}
        for tp in tps:
            start = self.committed.get(tp, earliest.get(tp, 0))
            out[(tp.topic, tp.partition)] = max(0, int(ends.get(tp, 0)) - int(start))
        return out
