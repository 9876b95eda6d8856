"""Kafka's default key partitioning, for the places that build record batches themselves
(the collector's produce batcher, the worker's effects): the partitions ``send`` would pick."""

from __future__ import annotations

import random


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
