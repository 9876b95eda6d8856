"""A zombie worker: SIGSTOPped past the session timeout (its partitions move to the
other worker), then SIGCONTed while it still holds a fetched batch. Whatever it writes
then is refused by the per-visitor compare-and-set: counts are exact, nothing doubles
or rolls back."""

from __future__ import annotations

import os
import signal
import time
import warnings

from tests.integration.conftest import Engine, produce, simulated_traffic, wait_until

warnings.filterwarnings("ignore", category=DeprecationWarning)


def test_a_zombie_worker_rolls_back_and_doubles_nothing(
    isolated_engine: Engine, kafka_bootstrap: str
) -> None:
    from kafka import KafkaProducer

    eng = isolated_engine
    eng.env["PERSONA_KAFKA_SESSION_TIMEOUT_S"] = "6"
    expected, events = simulated_traffic(seed=21, visitors=2500)
    # Produced before the worker starts: it has a backlog to be stopped in the middle of.
    eng.create_topics()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    produce(producer, eng.events_topic, events)
    eng.start("zombie", "worker")
    eng.wait_worker(name="zombie")

    def processed() -> int:
        return sum(eng.counts(list(expected)).values())

    wait_until(lambda: processed() > len(events) // 5, 60, "the first worker part-way")
    zombie = eng.procs["zombie"]
    os.killpg(zombie.pid, signal.SIGSTOP)
    try:
        eng.env["PERSONA_WORKER_WEB_PORT"] = str(int(eng.env["PERSONA_WORKER_WEB_PORT"]) + 1)
        eng.start("worker")
        eng.wait_worker(timeout=120)
        half = processed()
        assert half < len(events), "the first worker finished before it could be stopped"
        wait_until(lambda: processed() > half, 90, "the second worker to take over")
        time.sleep(2.0)
        produce(producer, eng.events_topic, events[:300])  # replays while it is stopped
    finally:
        os.killpg(zombie.pid, signal.SIGCONT)
    producer.close()
    try:
        wait_until(lambda: processed() == len(events), 180, "every event counted", every=1.0)
    except AssertionError:
        print(f"----- zombie log -----\n{eng.log('zombie')[-4000:]}")
        print(f"----- worker log -----\n{eng.log('worker')[-4000:]}")
        raise
    time.sleep(8)  # the zombie rejoins and writes what it had: nothing may change
    counts = eng.counts(list(expected))
    wrong = {v: (counts.get(v), n) for v, n in expected.items() if counts.get(v) != n}
    assert not wrong, f"{len(wrong)} visitors wrong, e.g. {list(wrong.items())[:5]}"
