"""The produce batcher: requests share record batches, and none is answered before its ack.

A fake aiokafka producer stands in for the broker: ``send_batch`` hands back a future per
record batch that the test resolves (the ack) or fails by hand.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stream_app.collector.producer import (
    CachedPartitioner,
    EventProducer,
    KafkaUnavailable,
    ProduceBatcher,
)
from stream_app.settings import Settings

PARTITIONS = 4


class FakeBuilder:
    def __init__(self, capacity: int) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.capacity = capacity
        self.closed = False

    def append(self, *, timestamp: Any, key: bytes, value: bytes, headers: Any) -> object | None:
        if self.closed or len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        self.closed = True


class FakeKafka:
    """``partitions_for``, ``create_batch`` and ``send_batch`` as aiokafka's producer has them."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.batches: list[tuple[int, FakeBuilder, asyncio.Future[None]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    def create_batch(self) -> FakeBuilder:
        return FakeBuilder(self.capacity)

    async def send_batch(self, batch: FakeBuilder, topic: str, *, partition: int) -> Any:
        assert batch.closed, "a batch handed over must be closed (no linger in aiokafka)"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.batches.append((partition, batch, fut))
        return fut

    def ack_all(self) -> None:
        for _, _, fut in self.batches:
            if not fut.done():
                fut.set_result(None)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def keys(*names: str) -> list[bytes]:
    return [n.encode() for n in names]


async def test_concurrent_requests_share_one_group_and_wait_for_their_acks() -> None:
    kafka = FakeKafka()
    partitioner = CachedPartitioner()
    batcher = ProduceBatcher(kafka, "events", partitioner)
    waiters = [batcher.submit(keys(f"v-{i}"), [b"e%d" % i]) for i in range(50)]
    await settle()
    assert batcher.flushes == 1  # one group for the 50 requests
    assert len(kafka.batches) <= PARTITIONS  # one record batch per partition
    sent = {key: part for part, b, _ in kafka.batches for key, _ in b.records}
    assert len(sent) == 50
    for key, part in sent.items():  # the same partitions as aiokafka's default partitioner
        assert part == partitioner(key, list(range(PARTITIONS)), list(range(PARTITIONS)))
    assert not any(w.done() for w in waiters)  # nothing is answered before the acks
    *first, last = kafka.batches
    for _, _, fut in first:
        fut.set_result(None)
    await settle()
    assert not any(w.done() for w in waiters)  # every batch of the group must be acked
    last[2].set_result(None)
    await settle()
    assert all(w.done() and w.exception() is None for w in waiters)
    await batcher.stop()


async def test_a_failed_batch_fails_every_request_of_its_group() -> None:
    kafka = FakeKafka()
    batcher = ProduceBatcher(kafka, "events", CachedPartitioner())
    waiters = [batcher.submit(keys(f"v-{i}", f"w-{i}"), [b"a", b"b"]) for i in range(20)]
    await settle()
    kafka.batches[0][2].set_exception(RuntimeError("NotEnoughReplicas (test)"))
    kafka.ack_all()
    await settle()
    assert all(isinstance(w.exception(), RuntimeError) for w in waiters)
    # the task goes on: the next group is sent and acked
    again = batcher.submit(keys("v-x"), [b"x"])
    await settle()
    kafka.ack_all()
    await settle()
    assert again.done() and again.exception() is None
    await batcher.stop()


async def test_a_request_that_gave_up_is_not_sent_late() -> None:
    kafka = FakeKafka()
    batcher = ProduceBatcher(kafka, "events", CachedPartitioner())
    gone = batcher.submit(keys("v-gone"), [b"late"])
    kept = batcher.submit(keys("v-kept"), [b"kept"])
    gone.cancel()  # what asyncio.wait_for does on timeout
    await settle()
    records = [r for _, b, _ in kafka.batches for r in b.records]
    assert records == [(b"v-kept", b"kept")]
    kafka.ack_all()
    await settle()
    assert kept.result() is None
    await batcher.stop()


async def test_full_batches_are_split_and_all_acked() -> None:
    kafka = FakeKafka(capacity=3)
    batcher = ProduceBatcher(kafka, "events", CachedPartitioner())
    done = batcher.submit([b"same-visitor"] * 10, [b"%d" % i for i in range(10)])
    await settle()
    assert [len(b.records) for _, b, _ in kafka.batches] == [3, 3, 3, 1]
    assert [v for _, b, _ in kafka.batches for _, v in b.records] == [
        b"%d" % i for i in range(10)
    ]  # in order, one partition
    kafka.ack_all()
    await settle()
    assert done.result() is None
    await batcher.stop()


async def test_stop_fails_what_is_still_queued() -> None:
    batcher = ProduceBatcher(FakeKafka(), "events", CachedPartitioner())
    batcher._task = asyncio.get_running_loop().create_task(asyncio.sleep(3600))
    queued = batcher.submit(keys("v-1"), [b"x"])
    await batcher.stop()
    with pytest.raises(KafkaUnavailable):
        queued.result()


async def test_send_events_is_503_material_when_no_ack_comes_in_time() -> None:
    settings = Settings(kafka_timeout_s=0.2)
    producer = EventProducer(settings)
    kafka = FakeKafka()  # never acks
    producer._producer = kafka
    producer._batcher = ProduceBatcher(kafka, settings.topic_events, CachedPartitioner())
    started = asyncio.get_running_loop().time()
    with pytest.raises(KafkaUnavailable, match="did not acknowledge within"):
        await producer.send_events([{"visitor_id": "v-1"}], [b"{}"])
    assert asyncio.get_running_loop().time() - started < 1.0
    kafka.ack_all()  # a late ack does not trouble the timed-out request's future
    await settle()
    await producer._batcher.stop()
