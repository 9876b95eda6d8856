"""SIGKILL a (dedicated) redis-server mid-stream and start it again with
deploy/local/redis.sh (AOF, appendfsync everysec): every visitor's count is exact and
every record readable. The worker finds Redis restarted (a new run_id), goes back to the
offsets the AOF kept, and the per-visitor compare-and-set skips what survived."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
import warnings
from pathlib import Path

from tests.integration.conftest import (
    REPO,
    Engine,
    free_port,
    produce,
    simulated_traffic,
    wait_until,
)

warnings.filterwarnings("ignore", category=DeprecationWarning)


def redis_sh(command: str, directory: Path, port: int) -> None:
    env = {**os.environ, "PERSONA_REDIS_PORT": str(port), "PERSONA_REDIS_DIR": str(directory)}
    subprocess.run(
        ["bash", str(REPO / "deploy/local/redis.sh"), command], env=env, check=True, timeout=150
    )


def test_sigkill_redis_mid_stream_loses_and_doubles_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    directory = tmp_path / "redis"
    port = free_port()  # a dedicated redis-server: never the shared one
    redis_sh("start", directory, port)
    assert (directory / "redis.pid").exists(), "redis.sh reused a Redis it did not start"
    eng = Engine(kafka_bootstrap, f"redis://127.0.0.1:{port}/0", uuid.uuid4().hex[:8])
    try:
        expected, events = simulated_traffic(seed=11, visitors=2000)
        # Produced before the worker starts: it has a backlog to be cut in the middle of.
        eng.create_topics()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
        produce(producer, eng.events_topic, events)
        eng.start("worker")
        eng.wait_worker()

        def processed() -> int:
            try:
                return sum(eng.counts(list(expected)).values())
            except Exception:
                return 0

        wait_until(lambda: processed() > len(events) // 4, 90, "the worker part-way through")
        assert processed() < len(events), "the worker finished before Redis could be killed"
        pid = int((directory / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        time.sleep(2.0)  # the worker retries meanwhile; producers keep writing
        produce(producer, eng.events_topic, events[:300])  # replays of old events
        producer.close()
        redis_sh("start", directory, port)
        eng.redis = eng.redis.__class__.from_url(
            f"redis://127.0.0.1:{port}/0", decode_responses=True
        )
        try:
            wait_until(lambda: processed() == len(events), 180, "every event counted", every=1.0)
        except AssertionError:
            print(f"----- worker log -----\n{eng.log('worker')[-6000:]}")
            raise
        time.sleep(3)
        records = eng.records(list(expected))
        wrong = {
            v: (records[v] or {}).get("events")
            for v, n in expected.items()
            if (records[v] or {}).get("events") != n
        }
        assert not wrong, f"{len(wrong)} visitors wrong, e.g. {list(wrong.items())[:5]}"
    finally:
        eng.close()
        redis_sh("stop", directory, port)
