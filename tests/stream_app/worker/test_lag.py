"""Consumer lag: the arithmetic, the faust-consumer adapter and the gauge's stale series."""

from __future__ import annotations

from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry

from stream_app.metrics import WorkerMetrics
from stream_app.worker.lag import LagGauge, measure_lag, partition_lag


class TP(NamedTuple):
    topic: str
    partition: int


def test_lag_is_end_minus_committed() -> None:
    lag = partition_lag({("ev", 0): 120, ("ev", 1): 50}, {("ev", 0): 100, ("ev", 1): 50}, {})
    assert lag == {("ev", 0): 20, ("ev", 1): 0}


def test_partition_never_committed_counts_from_earliest() -> None:
    lag = partition_lag({("ev", 0): 120}, {("ev", 0): None}, {("ev", 0): 30})
    assert lag == {("ev", 0): 90}


def test_lag_never_negative_when_end_offsets_are_older_than_the_commit() -> None:
    assert partition_lag({("ev", 0): 10}, {("ev", 0): 12}, {}) == {("ev", 0): 0}


class FakeConsumer:
    def __init__(self) -> None:
        self._committed_offset = {TP("ev", 0): 7, TP("ev", 1): None}

    def assignment(self) -> set[TP]:
        return {TP("ev", 0), TP("ev", 1), TP("other", 0)}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: 10 for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        assert list(tps) == [TP("ev", 1)], "earliest offsets only for uncommitted partitions"
        return {tp: 4 for tp in tps}


async def test_measure_lag_covers_only_the_wanted_topics() -> None:
    lag = await measure_lag(FakeConsumer(), ["ev"])
    assert lag == {("ev", 0): 3, ("ev", 1): 6}


async def test_measure_lag_without_assignment_is_empty() -> None:
    class Idle(FakeConsumer):
        def assignment(self) -> set[TP]:
            return set()

    assert await measure_lag(Idle(), ["ev"]) == {}


def value(metrics: WorkerMetrics, topic: str, partition: str) -> Any:
    return metrics.registry.get_sample_value(
        "persona_worker_consumer_lag_messages", {"topic": topic, "partition": partition}
    )


def test_gauge_drops_partitions_that_moved_to_another_worker() -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    gauge = LagGauge(metrics.consumer_lag)
    gauge.update({("ev", 0): 5, ("ev", 1): 9})
    assert value(metrics, "ev", "0") == 5
    assert value(metrics, "ev", "1") == 9
    gauge.update({("ev", 1): 2})  # partition 0 was revoked in a rebalance
    assert value(metrics, "ev", "0") is None
    assert value(metrics, "ev", "1") == 2
