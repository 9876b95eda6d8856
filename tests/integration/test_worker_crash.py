"""SIGKILL the worker mid-stream and restart it: every visitor's event count must equal
the simulator's exactly — nothing lost (at-least-once) and nothing doubled (event_id
de-duplication in the changelog-backed visitor state)."""

from __future__ import annotations

import json
import signal
import time
import uuid
import warnings
from collections.abc import Iterator

import pytest

from models.catalog import Catalog
from models.simulator import Simulator
from stream_app.settings import DEFAULT_CATALOG
from tests.integration.conftest import Engine, wait_until

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture
def crash_engine(kafka_bootstrap: str, redis_url: str) -> Iterator[Engine]:
    eng = Engine(kafka_bootstrap, redis_url, uuid.uuid4().hex[:8])
    try:
        yield eng
    except BaseException:
        print(f"----- worker log -----\n{eng.log('worker')[-6000:]}")
        raise
    finally:
        eng.close()


def test_sigkill_mid_stream_loses_and_doubles_nothing(
    crash_engine: Engine, kafka_bootstrap: str
) -> None:
    from kafka import KafkaProducer

    eng = crash_engine
    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=5, labelled_fraction=0.05)
    visitors = list(sim.visitors(2500))
    expected = {v.visitor_id: len(v.events) for v in visitors}
    events = [e for v in visitors for e in v.events]
    eng.start("worker")
    eng.wait_worker()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    for i, e in enumerate(events):
        producer.send(eng.events_topic, key=e["visitor_id"].encode(), value=json.dumps(e).encode())
        if i == len(events) // 3:
            producer.flush()
    producer.flush()

    def processed() -> int:
        return sum(eng.counts(list(expected)).values())

    wait_until(lambda: processed() > len(events) // 5, 60, "the worker to be part-way through")
    assert processed() < len(events), "the worker finished before it could be killed"
    assert eng.stop("worker", signal.SIGKILL) == -signal.SIGKILL
    # Producers keep writing while the worker is down, including replays of old events.
    for e in events[:500]:
        producer.send(eng.events_topic, key=e["visitor_id"].encode(), value=json.dumps(e).encode())
    producer.flush()
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
