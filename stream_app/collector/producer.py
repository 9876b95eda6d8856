"""Hands validated events to Kafka; answers only after the broker acknowledged them.

One :class:`EventProducer` per API process wraps an aiokafka producer with ``acks=all`` and
idempotence. Every call is bounded by ``settings.kafka_timeout_s``: when the broker cannot be
reached the caller gets :class:`KafkaUnavailable` in bounded time (the collector turns it
into ``503``), never a success for an event that was not acknowledged.

Events are produced through a :class:`ProduceBatcher` (group commit): a request hands its
events over and waits on one future; one task takes everything handed over since its last
turn, writes it into one record batch per partition (aiokafka's ``create_batch`` /
``send_batch``: no per-message coroutine, future or partitioner call inside aiokafka) and
resolves every request of that group once the broker acknowledged all of its batches. While
a produce request is in flight (aiokafka sends one at a time per broker) new events gather
for the next group, so concurrent single-event requests share produce requests instead of
each awaiting its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from stream_app.kafka_partitioner import CachedPartitioner
from stream_app.settings import Settings

log = logging.getLogger(__name__)


class KafkaUnavailable(RuntimeError):
    """The broker did not acknowledge in time; nothing may be reported as accepted."""


class _Group:
    """The requests of one flush: resolved when every record batch of it is acknowledged."""

    __slots__ = ("failed", "remaining", "waiters")

    def __init__(self, waiters: list[asyncio.Future[None]], batches: int) -> None:
        self.waiters = waiters
        self.remaining = batches
        self.failed = False

    def batch_done(self, fut: asyncio.Future[Any]) -> None:
        self.remaining -= 1
        exc = KafkaUnavailable("the produce was cancelled") if fut.cancelled() else fut.exception()
        if exc is not None and not self.failed:
            self.fail(exc)
        elif self.remaining == 0 and not self.failed:
            for waiter in self.waiters:
                if not waiter.done():  # a request that timed out has cancelled its own
                    waiter.set_result(None)

    def fail(self, exc: BaseException) -> None:
        self.failed = True
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(exc)


class ProduceBatcher:
    """Group commit of keyed messages to one topic through an aiokafka producer.

    :meth:`submit` queues a request's messages and returns a future that is resolved once
    the broker acknowledged every one of them (or fails with the producer's error). One task
    flushes: each turn it takes all messages queued since the last, skips those of requests
    that already gave up (their future cancelled by a timeout: they are never sent late),
    partitions them by key (:class:`CachedPartitioner`, the same partitions as aiokafka's
    default), appends them to one closed record batch per partition (no linger inside
    aiokafka) and hands those to ``send_batch``. ``send_batch`` waits while the previous
    batch of a partition is still queued, so under load the next group gathers meanwhile.
    """

    def __init__(self, producer: Any, topic: str, partitioner: CachedPartitioner) -> None:
        self._producer = producer
        self._topic = topic
        self._partitioner = partitioner
        self._keys: list[bytes] = []
        self._values: list[bytes] = []
        self._waiters: list[tuple[asyncio.Future[None], int]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0  # groups sent (for tests and profiling)

    def submit(self, keys: Sequence[bytes], values: Sequence[bytes]) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._keys.extend(keys)
        self._values.extend(values)
        self._waiters.append((waiter, len(keys)))
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return waiter

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            keys, values, waiters = self._keys, self._values, self._waiters
            self._keys, self._values, self._waiters = [], [], []
            group = _Group([w for w, _ in waiters if not w.done()], 0)
            if not group.waiters:
                continue
            try:
                sent = await self._send(keys, values, waiters)
            except Exception as exc:  # the group's requests answer 503; the task goes on
                group.fail(exc)
                continue
            self.flushes += 1
            group.remaining = len(sent)
            for fut in sent:
                fut.add_done_callback(group.batch_done)

    async def _send(
        self,
        keys: list[bytes],
        values: list[bytes],
        waiters: list[tuple[asyncio.Future[None], int]],
    ) -> list[asyncio.Future[Any]]:
        producer, topic = self._producer, self._topic
        all_partitions = list(await producer.partitions_for(topic))
        partition_of = self._partitioner
        builders: dict[int, Any] = {}
        sent: list[asyncio.Future[Any]] = []
        start = 0
        for waiter, count in waiters:
            end = start + count
            if waiter.done():  # gave up (timed out) before its turn: not sent at all
                start = end
                continue
            for i in range(start, end):
                key, value = keys[i], values[i]
                partition = partition_of(key, all_partitions, all_partitions)
                builder = builders.get(partition)
                if builder is None:
                    builder = builders[partition] = producer.create_batch()
                if builder.append(timestamp=None, key=key, value=value, headers=[]) is None:
                    builder.close()  # full: send it, start the partition's next batch
                    sent.append(await producer.send_batch(builder, topic, partition=partition))
                    builder = builders[partition] = producer.create_batch()
                    if builder.append(timestamp=None, key=key, value=value, headers=[]) is None:
                        raise KafkaUnavailable(f"a message of {len(value)} bytes is too large")
            start = end
        for partition, builder in builders.items():
            builder.close()  # complete: aiokafka sends it without lingering
            sent.append(await producer.send_batch(builder, topic, partition=partition))
        return sent

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):  # cancelled or failed: gone either way
                await self._task
            self._task = None
        for waiter, _ in self._waiters:
            if not waiter.done():
                waiter.set_exception(KafkaUnavailable("the producer stopped"))
        self._keys, self._values, self._waiters = [], [], []


class EventProducer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: Any = None
        self._batcher: ProduceBatcher | None = None
        self._lock = asyncio.Lock()

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def _ensure_started(self) -> Any:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is not None:
                return self._producer
            from aiokafka import AIOKafkaProducer

            timeout_ms = int(self._settings.kafka_timeout_s * 1000)
            partitioner = CachedPartitioner()
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.kafka_bootstrap,
                acks="all",
                enable_idempotence=True,
                # Events go through the ProduceBatcher in closed batches, which never linger;
                # this applies to send_raw's control messages and tombstones only.
                linger_ms=5,
                max_batch_size=256 * 1024,
                request_timeout_ms=max(timeout_ms, 1000),
                client_id="persona-stream-collector",
                partitioner=partitioner,
            )
            try:
                await asyncio.wait_for(producer.start(), self._settings.kafka_timeout_s)
            except Exception as exc:
                await _quiet_stop(producer)
                raise KafkaUnavailable(
                    f"cannot reach Kafka at {self._settings.kafka_bootstrap}: {exc!r}"
                ) from exc
            self._batcher = ProduceBatcher(producer, self._settings.topic_events, partitioner)
            self._producer = producer
            return producer

    async def send_events(
        self, events: Sequence[dict[str, Any]], payloads: Sequence[bytes]
    ) -> None:
        """Produce ``payloads`` keyed by each event's visitor_id; wait for every ack."""
        if not events:
            return
        await self._ensure_started()
        assert self._batcher is not None
        done = self._batcher.submit([e["visitor_id"].encode() for e in events], payloads)
        try:
            # On timeout wait_for cancels ``done``: events not yet flushed are then dropped.
            await asyncio.wait_for(done, self._settings.kafka_timeout_s)
        except TimeoutError as exc:
            raise KafkaUnavailable(
                f"Kafka did not acknowledge within {self._settings.kafka_timeout_s:g}s"
            ) from exc
        except Exception as exc:
            raise KafkaUnavailable(f"Kafka rejected the write: {exc!r}") from exc

    async def send_raw(self, topic: str, key: bytes, value: bytes | None) -> None:
        """Produce one message (a control message or a tombstone) and wait for the ack."""
        producer = await self._ensure_started()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(topic, value=value, key=key), self._settings.kafka_timeout_s
            )
        except Exception as exc:
            raise KafkaUnavailable(f"Kafka did not acknowledge: {exc!r}") from exc

    async def stop(self) -> None:
        if self._batcher is not None:
            await self._batcher.stop()
            self._batcher = None
        if self._producer is not None:
            await _quiet_stop(self._producer)
            self._producer = None


async def _quiet_stop(producer: Any) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 5.0)
    except Exception:
        log.debug("stopping the Kafka producer failed", exc_info=True)
