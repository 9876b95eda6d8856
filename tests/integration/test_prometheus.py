"""Issue 5 item 6: a real Prometheus server scrapes the worker and the API.

Prometheus (Debian's ``prometheus`` package, installed by ``deploy/local/install.sh``)
runs as a subprocess of this test with its own config, storage dir and a free port, so
it neither needs nor collides with a system service on :9090. Our metrics are read
back through its HTTP query API.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.catalog import Catalog
from models.simulator import Simulator
from stream_app.settings import DEFAULT_CATALOG
from tests.integration.conftest import Engine, free_port, wait_until

WAIT_S = 60.0
WORKER_EVENTS = "persona_worker_events_processed_total"
API_POSTS = (
    'persona_api_request_duration_seconds_count{route="/v1/events",method="POST",status="202"}'
)


class Prometheus:
    def __init__(self, binary: str, tmp: Path, targets: dict[str, int]) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.config = tmp / "prometheus.yml"
        self.config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            + "".join(
                f"  - job_name: {job}\n"
                f"    metrics_path: /metrics\n"
                f"    static_configs:\n"
                f"      - targets: ['127.0.0.1:{port}']\n"
                for job, port in targets.items()
            )
        )
        self.log_path = tmp / "prometheus.log"
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5.0)
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = binary

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=info",
            ],
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def assert_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-6000:]

    def wait_ready(self) -> None:
        def ready() -> bool:
            self.assert_alive()
            try:
                return self.http.get("/-/ready").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, WAIT_S, "prometheus to answer /-/ready", every=0.2)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of ``promql``; raises on an API error."""
        r = self.http.get("/api/v1/query", params={"query": promql})
        assert r.status_code == 200, f"{promql}: HTTP {r.status_code} {r.text}"
        body = r.json()
        assert body["status"] == "success", body
        assert body["data"]["resultType"] == "vector", body
        return list(body["data"]["result"])

    def total(self, promql: str) -> float:
        return sum(float(s["value"][1]) for s in self.query(promql))

    def stop(self) -> None:
        self.http.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@contextmanager
def prometheus_server(binary: str, tmp: Path, targets: dict[str, int]) -> Iterator[Prometheus]:
    prom = Prometheus(binary, tmp, targets)
    prom.start()
    try:
        prom.wait_ready()
        yield prom
    except BaseException:
        sys.stderr.write(f"\n----- prometheus log -----\n{prom.log()}\n")
        raise
    finally:
        prom.stop()
        shutil.rmtree(tmp / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    """Requested before ``engine`` so a missing binary fails before processes start."""
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail(
            "prometheus is not on PATH; install Debian's prometheus package with "
            "`bash deploy/local/install.sh` (needs root or sudo for apt-get)",
            pytrace=False,
        )
    return path


def worker_events_now(engine: Engine) -> float:
    """persona_worker_events_processed_total summed over types, read from the worker itself."""
    port = engine.env["PERSONA_WORKER_WEB_PORT"]
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)
    assert r.status_code == 200, r.text
    return sum(
        s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == WORKER_EVENTS
    )


def test_prometheus_scrapes_worker_and_api(
    prometheus_bin: str, engine: Engine, tmp_path: Path
) -> None:
    world = Simulator(
        Catalog.load(DEFAULT_CATALOG), seed=7, labelled_fraction=0.0, events_per_visitor=6
    )
    visitors = list(world.visitors(40))
    events = [e for v in visitors for e in v.events]
    posts = 0
    for i in range(0, len(events), 50):
        r = engine.http.post("/v1/events", json={"events": events[i : i + 50]})
        assert r.status_code == 202, r.text
        assert r.json()["rejected"] == []
        posts += 1
    expected = {v.visitor_id: len(v.events) for v in visitors}
    wait_until(lambda: engine.counts(list(expected)) == expected, WAIT_S, "events in Redis", 0.5)
    processed = worker_events_now(engine)
    assert processed >= len(events), f"worker reports {processed} events, posted {len(events)}"

    targets = {
        "persona-worker": int(engine.env["PERSONA_WORKER_WEB_PORT"]),
        "persona-api": engine.api_port,
    }
    with prometheus_server(prometheus_bin, tmp_path, targets) as prom:
        # Both targets scraped successfully.
        wait_until(
            lambda: (
                {s["metric"]["job"]: s["value"][1] for s in prom.query("up")}
                == {"persona-worker": "1", "persona-api": "1"}
            ),
            WAIT_S,
            "both targets up in prometheus",
            every=0.5,
        )
        seen = wait_until(
            lambda: prom.query(WORKER_EVENTS) if prom.total(WORKER_EVENTS) >= processed else [],
            WAIT_S,
            f"{WORKER_EVENTS} >= {processed} in prometheus",
            every=0.5,
        )
        assert {s["metric"]["job"] for s in seen} == {"persona-worker"}
        assert {s["metric"]["type"] for s in seen} >= {"page_view"}
        assert sum(float(s["value"][1]) for s in seen) >= processed > 0

        wait_until(
            lambda: prom.total(API_POSTS) == posts,
            WAIT_S,
            f"{API_POSTS} == {posts} in prometheus",
            every=0.5,
        )
        api = prom.query(API_POSTS)
        assert [s["metric"]["job"] for s in api] == ["persona-api"]
        assert float(api[0]["value"][1]) == posts > 0
