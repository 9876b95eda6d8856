"""KafkaEmitter against the real broker: effects sent as one record batch per partition land
where a plain keyed ``send`` would put them, in order, and are all acknowledged."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from stream_app.worker.events_consumer import KafkaEmitter

pytestmark = pytest.mark.integration


async def _create(bootstrap: str, topics: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()]
        )
    finally:
        await admin.close()


async def _read(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[int, bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(out) < count:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    out += [(tp.partition, r.key, r.value) for r in records]
    finally:
        await consumer.stop()
    return out


async def test_effects_land_on_the_keys_partitions_in_order(
    kafka_bootstrap: str, unique: str
) -> None:
    assignments, dlq = f"emit-{unique}.assignments", f"emit-{unique}.dlq"
    await _create(kafka_bootstrap, {assignments: 4, dlq: 1})
    # 3,000 effects over 50 keys, values numbered: bigger than one record batch of 1 MiB
    # per partition (values of ~1.5 KB), so full batches are sent and new ones started.
    effects = [
        (assignments, f"v-{i % 50}".encode(), f"{i:06d}".encode() + b"x" * 1500)
        for i in range(3000)
    ]
    effects += [(dlq, None, f"dead-{i}".encode()) for i in range(5)]
    emitter = KafkaEmitter(kafka_bootstrap)
    await emitter.start()
    try:
        await emitter.send_all(effects)
    finally:
        await emitter.stop()

    got = await _read(kafka_bootstrap, assignments, 3000)
    assert len(got) == 3000
    place = DefaultPartitioner()
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for partition, key, value in got:
        assert partition == place(key, [0, 1, 2, 3], [0, 1, 2, 3]), key
        by_key[key].append(int(value[:6]))
    assert len(by_key) == 50
    for numbers in by_key.values():
        assert numbers == sorted(numbers)  # one key's effects in the order they were made
    dead = await _read(kafka_bootstrap, dlq, 5)
    assert sorted(v for _, _, v in dead) == sorted(f"dead-{i}".encode() for i in range(5))
