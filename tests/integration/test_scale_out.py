"""A second worker joins mid-stream: the partitions are rebalanced between the two
processes (nothing to restore: the states are in Redis; events and control partitions move
together) and every
visitor's event count still equals the simulator's exactly; both workers did work."""

from __future__ import annotations

import warnings

import httpx

from tests.integration.conftest import (
    Engine,
    free_port,
    produce,
    simulated_traffic,
    wait_until,
)

warnings.filterwarnings("ignore", category=DeprecationWarning)


def consumed(port: str, topic: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    prefix = f'persona_worker_messages_consumed_total{{topic="{topic}"}}'
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


def owns_partitions(port: str, topic: str) -> bool:
    """The worker reports consumer lag (every 5 s) for exactly the partitions it owns."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    series = "persona_worker_consumer_lag_messages{"  # labels come sorted: partition, topic
    return any(line.startswith(series) and f'topic="{topic}"' in line for line in text.splitlines())


def test_a_second_worker_takes_over_partitions_without_losing_or_doubling(
    isolated_engine: Engine, kafka_bootstrap: str
) -> None:
    from kafka import KafkaProducer

    eng = isolated_engine
    expected, events = simulated_traffic(seed=11, visitors=1500)
    half = len(events) // 2
    eng.start("worker")
    eng.wait_worker()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)

    def processed() -> int:
        return sum(eng.counts(list(expected)).values())

    produce(producer, eng.events_topic, events[:half])
    wait_until(lambda: processed() > half // 2, 60, "the first worker to be part-way through")
    port2 = str(free_port())
    eng.start(
        "worker2",
        command="worker",
        PERSONA_WORKER_WEB_PORT=port2,
        PERSONA_WORKER_DATA_DIR=str(eng.tmp / "worker2"),
    )
    eng.wait_worker(timeout=120, name="worker2")
    # "Ready" comes before the group rebalance hands the newcomer its partitions; under load
    # the first worker could otherwise drain everything before the second owns any.
    wait_until(
        lambda: owns_partitions(port2, eng.events_topic),
        90,
        "the second worker to be assigned partitions",
        every=0.5,
    )
    produce(producer, eng.events_topic, events[half:])
    produce(producer, eng.events_topic, events[:300])  # replays, possibly on either worker
    producer.close()

    try:
        wait_until(lambda: processed() == len(events), 180, "exact counts", every=1.0)
    except AssertionError:
        for name in ("worker", "worker2"):
            print(f"----- {name} log -----\n{eng.log(name)[-5000:]}")
        counts = eng.counts(list(expected))
        wrong = {v: (counts.get(v), n) for v, n in expected.items() if counts.get(v) != n}
        raise AssertionError(
            f"{processed()} of {len(events)} events counted; {len(wrong)} visitors wrong, "
            f"e.g. {list(wrong.items())[:3]}"
        ) from None
    port1 = eng.env["PERSONA_WORKER_WEB_PORT"]
    assert consumed(port1, eng.events_topic) > 0
    assert consumed(port2, eng.events_topic) > 0, "the second worker consumed no events"
