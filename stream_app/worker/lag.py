"""Consumer lag of the partitions a worker owns: log-end offset minus committed offset.

Kafka's own definition (what ``kafka-consumer-groups.sh --describe`` prints): the number
of messages on the broker that this consumer group has not committed yet. A partition
nothing was committed for counts from its earliest available offset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

Partition = tuple[str, int]  # (topic, partition)


def partition_lag(
    end_offsets: Mapping[Partition, int],
    committed: Mapping[Partition, int | None],
    earliest: Mapping[Partition, int],
) -> dict[Partition, int]:
    """Messages behind per partition; committed offsets are the next offset to read."""
    lag: dict[Partition, int] = {}
    for tp, end in end_offsets.items():
        done = committed.get(tp)
        start = done if done is not None else earliest.get(tp, 0)
        lag[tp] = max(0, end - start)
    return lag


async def measure_lag(consumer: Any, topics: Iterable[str]) -> dict[Partition, int]:
    """Lag of this worker's assigned partitions of ``topics`` (a faust consumer)."""
    wanted = set(topics)
    tps = [tp for tp in consumer.assignment() if tp.topic in wanted]
    if not tps:
        return {}
    ends = await consumer.highwaters(*tps)
    # faust keeps the offsets it committed (the next offset to read) per partition.
    committed_by_tp = getattr(consumer, "_committed_offset", {})
    committed = {(tp.topic, tp.partition): committed_by_tp.get(tp) for tp in tps}
    missing = [tp for tp in tps if committed[(tp.topic, tp.partition)] is None]
    earliest = await consumer.earliest_offsets(*missing) if missing else {}
    return partition_lag(
        {(tp.topic, tp.partition): int(end) for tp, end in ends.items() if end is not None},
        committed,
        {(tp.topic, tp.partition): int(off) for tp, off in earliest.items() if off is not None},
    )


class LagGauge:
    """Keeps a labelled gauge equal to the latest measurement, dropping partitions
    that moved to another worker (a stale series would report a frozen lag)."""

    def __init__(self, gauge: Any) -> None:
        self.gauge = gauge
        self.shown: set[Partition] = set()

    def update(self, lag: Mapping[Partition, int]) -> None:
        for topic, partition in self.shown - set(lag):
            with contextlib.suppress(KeyError):  # already gone
                self.gauge.remove(topic, str(partition))
        for (topic, partition), n in lag.items():
            self.gauge.labels(topic, str(partition)).set(n)
        self.shown = set(lag)
