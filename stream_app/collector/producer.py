"""Hands validated events to Kafka; answers only after the broker acknowledged them.

One :class:`EventProducer` per API process wraps an aiokafka producer with
``acks=all``, idempotence and a small linger for batching. Every call is bounded
by ``settings.kafka_timeout_s``: when the broker cannot be reached the caller gets
:class:`KafkaUnavailable` in bounded time (the collector turns it into ``503``),
never a success for an event that was not acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

from stream_app.settings import Settings

log = logging.getLogger(__name__)


class KafkaUnavailable(RuntimeError):
    """The broker did not acknowledge in time; nothing may be reported as accepted."""


class CachedPartitioner:
    """Kafka's default key partitioning (murmur2, as the Java client), remembered per key.

    aiokafka's murmur2 is pure Python (≈9% of a collected event's CPU); a visitor sends
    many events, so the partition of a recent key is looked up instead of hashed again.
    Same partitions as :class:`aiokafka.partitioner.DefaultPartitioner`.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        from aiokafka.partitioner import murmur2

        self._murmur2 = murmur2
        self._max_keys = max_keys
        self._hash: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        h = self._hash.get(key)
        if h is None:
            if len(self._hash) >= self._max_keys:
                self._hash.clear()
            h = self._hash[key] = self._murmur2(key) & 0x7FFFFFFF
        return all_partitions[h % len(all_partitions)]


class EventProducer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: Any = None
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
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.kafka_bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_batch_size=256 * 1024,
                request_timeout_ms=max(timeout_ms, 1000),
                client_id="persona-stream-collector",
                partitioner=CachedPartitioner(),
            )
            try:
                await asyncio.wait_for(producer.start(), self._settings.kafka_timeout_s)
            except Exception as exc:
                await _quiet_stop(producer)
                raise KafkaUnavailable(
                    f"cannot reach Kafka at {self._settings.kafka_bootstrap}: {exc!r}"
                ) from exc
            self._producer = producer
            return producer

    async def send_events(
        self, events: Sequence[dict[str, Any]], payloads: Sequence[bytes]
    ) -> None:
        """Produce ``payloads`` keyed by each event's visitor_id; wait for every ack."""
        if not events:
            return
        producer = await self._ensure_started()
        topic = self._settings.topic_events

        async def _send_all() -> None:
            futures = [
                await producer.send(topic, value=payload, key=event["visitor_id"].encode())
                for event, payload in zip(events, payloads, strict=True)
            ]
            await asyncio.gather(*futures)

        try:
            await asyncio.wait_for(_send_all(), self._settings.kafka_timeout_s)
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
        if self._producer is not None:
            await _quiet_stop(self._producer)
            self._producer = None


async def _quiet_stop(producer: Any) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 5.0)
    except Exception:
        log.debug("stopping the Kafka producer failed", exc_info=True)
