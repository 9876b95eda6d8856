"""SIGKILL a (dedicated) broker mid-stream while events keep arriving through the
collector, then restart it: the client retries the collector's 503s (same events, as the
contract allows) and every visitor's count is exact."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from tests.integration.conftest import Engine, simulated_traffic, wait_until
from tests.integration.test_kafka_outage import Broker


def test_sigkill_broker_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, redis_url: str, kafka_bootstrap: str
) -> None:
    broker = Broker(tmp_path)
    broker.run("start")
    eng = Engine(broker.bootstrap, redis_url, uuid.uuid4().hex[:8], PERSONA_KAFKA_TIMEOUT_S="2")
    try:
        expected, events = simulated_traffic(seed=31, visitors=600)
        eng.start("api")
        eng.start("worker")
        eng.wait_api()
        eng.wait_worker()
        batches = [events[i : i + 100] for i in range(0, len(events), 100)]
        killed = restarted = False
        retried = 0
        for n, batch in enumerate(batches):
            if n == len(batches) // 3 and not killed:
                os.kill(int((tmp_path / "kafka" / "kafka.pid").read_text()), signal.SIGKILL)
                killed = True
            while True:  # the contract: a 503 means retry the same events later
                try:
                    status = eng.http.post("/v1/events", json={"events": batch}).status_code
                except Exception:
                    status = 0
                if status == 202:
                    break
                retried += 1
                if killed and not restarted and retried >= 3:
                    broker.run("start")
                    restarted = True
                time.sleep(0.5)
        assert killed and restarted and retried >= 3, "the broker outage was not observed"

        def processed() -> int:
            return sum(eng.counts(list(expected)).values())

        try:
            wait_until(lambda: processed() == len(events), 180, "every event counted", every=1.0)
        except AssertionError:
            print(f"----- worker log -----\n{eng.log('worker')[-6000:]}")
            raise
        time.sleep(3)
        counts = eng.counts(list(expected))
        wrong = {v: (counts.get(v), n) for v, n in expected.items() if counts.get(v) != n}
        assert not wrong, f"{len(wrong)} visitors wrong, e.g. {list(wrong.items())[:5]}"
    finally:
        eng.close()
        broker.run("stop")
