"""SIGKILL the worker mid-stream and restart it: every visitor's event count must equal
the simulator's exactly — nothing lost (positions stored in Redis after the states) and
nothing doubled (messages at or below a visitor's applied offsets are skipped; event_id
de-duplication for the replayed copies sent as new messages)."""

from __future__ import annotations

import signal
import time
import warnings

from tests.integration.conftest import Engine, produce, simulated_traffic, wait_until

warnings.filterwarnings("ignore", category=DeprecationWarning)


def test_sigkill_mid_stream_loses_and_doubles_nothing(
    isolated_engine: Engine, kafka_bootstrap: str
) -> None:
    from kafka import KafkaProducer

    eng = isolated_engine
    expected, events = simulated_traffic(seed=5, visitors=2500)
    # Produced before the worker starts: it has a backlog to be killed in the middle of.
    eng.create_topics()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    third = len(events) // 3 + 1
    produce(producer, eng.events_topic, events[:third])
    produce(producer, eng.events_topic, events[third:])
    eng.start("worker")
    eng.wait_worker()

    def processed() -> int:
        return sum(eng.counts(list(expected)).values())

    wait_until(lambda: processed() > len(events) // 5, 60, "the worker to be part-way through")
    assert processed() < len(events), "the worker finished before it could be killed"
    assert eng.stop("worker", signal.SIGKILL) == -signal.SIGKILL
    # Producers keep writing while the worker is down, including replays of old events.
    produce(producer, eng.events_topic, events[:500])
    producer.close()

    eng.start("worker")
    eng.wait_worker(timeout=120)

    def exact() -> bool:
        return processed() == len(events)

    try:
        wait_until(exact, 180, f"all {len(events)} events to be counted", every=1.0)
    except AssertionError:
        counts = eng.counts(list(expected))
        over = sum(1 for v, n in expected.items() if (counts.get(v) or 0) > n)
        under = sum(1 for v, n in expected.items() if (counts.get(v) or 0) < n)
        print(f"----- worker log -----\n{eng.log('worker')[-8000:]}")
        raise AssertionError(
            f"{processed()} of {len(events)} events counted; {over} visitors over-counted, "
            f"{under} under-counted (worker log above)"
        ) from None
    time.sleep(3)
    counts = eng.counts(list(expected))
    wrong = {v: (counts.get(v), n) for v, n in expected.items() if counts.get(v) != n}
    assert not wrong, f"{len(wrong)} visitors with wrong counts, e.g. {list(wrong.items())[:5]}"
