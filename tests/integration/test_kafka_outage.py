"""With the broker stopped the collector answers 503 in bounded time; after the broker
restarts, the next event flows through to Redis.

This test runs its own broker (deploy/local/kafka.sh on a free port, own data dir) so
stopping it does not disturb the shared one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, Engine, free_port, wait_until


class Broker:
    def __init__(self, tmp: Path) -> None:
        port = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "PERSONA_KAFKA_PORT": str(port),
            "PERSONA_KAFKA_CONTROLLER_PORT": str(free_port()),
            "PERSONA_KAFKA_DIR": str(tmp / "kafka"),
        }

    def run(self, action: str) -> None:
        out = subprocess.run(
            ["bash", str(REPO / "deploy/local/kafka.sh"), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert out.returncode == 0, f"kafka.sh {action} failed:\n{out.stdout}\n{out.stderr}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("broker"))
    b.run("start")
    try:
        yield b
    finally:
        b.run("stop")


def event(vid: str) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "touchpoint",
        "visitor_id": vid,
        "ts": datetime.now(UTC).isoformat(),
        "channel": "email",
        "action": "open",
    }


def test_503_while_broker_down_then_events_flow_again(broker: Broker, redis_url: str) -> None:
    eng = Engine(broker.bootstrap, redis_url, uuid.uuid4().hex[:8], PERSONA_KAFKA_TIMEOUT_S="2")
    try:
        eng.start("api")
        eng.start("worker")
        eng.wait_api()
        eng.wait_worker()
        vid = f"v-{uuid.uuid4().hex}"
        assert eng.http.post("/v1/events", json=event(vid)).status_code == 202

        broker.run("stop")
        refused = event(vid)
        started = time.monotonic()
        down = eng.http.post("/v1/events", json=refused)
        elapsed = time.monotonic() - started
        assert down.status_code == 503, down.text
        assert down.json()["accepted"] == 0
        assert elapsed < 10.0, f"503 took {elapsed:.1f}s"
        assert eng.http.get("/readyz").status_code == 503

        broker.run("start")

        # A client retries what got 503 (same event_id) until accepted, then goes on.
        def accepted() -> bool:
            return eng.http.post("/v1/events", json=refused).status_code == 202

        wait_until(accepted, 60.0, "the collector to accept events again", every=1.0)
        assert eng.http.post("/v1/events", json=event(vid)).status_code == 202

        def counted() -> int:
            raw = eng.redis.get(eng.visitor_key(vid))
            return int(json.loads(raw)["events"]) if raw else 0

        # Nothing lost, nothing doubled: first + retried (once, even if the 503'd copy
        # reached Kafka late) + the next one.
        wait_until(lambda: counted() == 3, 60.0, "exactly 3 events in Redis", every=0.5)
        time.sleep(1.0)
        assert counted() == 3
    except BaseException:
        for name in ("api", "worker"):
            print(f"----- {name} log -----\n{eng.log(name)[-5000:]}")
        raise
    finally:
        eng.close()
