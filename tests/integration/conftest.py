"""Real processes against the real local Kafka and Redis.

``engine`` starts ``persona-stream worker`` and ``persona-stream api`` as real
subprocesses with topic names, consumer group, Redis prefix and ports unique to
the test module, and stops them afterwards (their logs are printed on failure).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from models.catalog import Catalog
from models.simulator import Simulator
from stream_app.settings import DEFAULT_CATALOG

REPO = Path(__file__).resolve().parents[2]
# Every engine has a key of each role; Engine.http sends the admin key (auth is tested in
# tests/stream_app/api/test_auth.py and test_access.py, here it must simply be on).
WRITE_KEY, READ_KEY, ADMIN_KEY = "it-write-key", "it-read-key", "it-admin-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


class Engine:
    """A worker and an API process sharing one isolated set of topics and keys."""

    def __init__(self, kafka_bootstrap: str, redis_url: str, tag: str, **extra_env: str) -> None:
        self.tag = tag
        self.tmp = Path(tempfile.mkdtemp(prefix=f"ps-{tag}-"))
        self.api_port = free_port()
        self.env = {
            **os.environ,
            "PERSONA_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "PERSONA_REDIS_URL": redis_url,
            "PERSONA_TOPIC_EVENTS": f"t-{tag}.events",
            "PERSONA_TOPIC_DLQ": f"t-{tag}.events.dlq",
            "PERSONA_TOPIC_ASSIGNMENTS": f"t-{tag}.assignments",
            "PERSONA_TOPIC_MODELS": f"t-{tag}.models",
            "PERSONA_TOPIC_PARTITIONS": "2",
            "PERSONA_CONSUMER_GROUP": f"g-{tag}",
            "PERSONA_REDIS_PREFIX": f"t:{tag}:",
            "PERSONA_API_PORT": str(self.api_port),
            "PERSONA_WORKER_WEB_PORT": str(free_port()),
            "PERSONA_WORKER_DATA_DIR": str(self.tmp / "worker"),
            "PERSONA_KAFKA_TIMEOUT_S": "3",
            "PERSONA_WRITE_KEYS": json.dumps([WRITE_KEY]),
            "PERSONA_READ_KEYS": json.dumps([READ_KEY]),
            "PERSONA_ADMIN_KEYS": json.dumps([ADMIN_KEY]),
            # The tests send from one address faster than a visitor would.
            "PERSONA_RATE_LIMIT_IP_PER_S": "0",
            **extra_env,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}",
            timeout=15.0,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.prefix = self.env["PERSONA_REDIS_PREFIX"]

    @property
    def events_topic(self) -> str:
        return self.env["PERSONA_TOPIC_EVENTS"]

    @property
    def dlq_topic(self) -> str:
        return self.env["PERSONA_TOPIC_DLQ"]

    def start(self, name: str, command: str | None = None, **env: str) -> None:
        """Run ``persona-stream <command>`` (default: ``name``) as process ``name``."""
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "stream_app.cli", command or name],
            cwd=REPO,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def create_topics(self) -> None:
        """Create the engine's topics now (``persona-stream topics``), so events can be
        produced before any worker runs: a worker then starts with a backlog to work
        through, however fast it is."""
        subprocess.run(
            [sys.executable, "-m", "stream_app.cli", "topics"],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def wait_api(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            self.assert_alive("api")
            try:
                return self.http.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, "the API to answer /healthz")

    def wait_worker(self, timeout: float = 90.0, name: str = "worker") -> None:
        def ready() -> bool:
            self.assert_alive(name)
            return "[^Worker]: Ready" in self.log(name)

        wait_until(ready, timeout, "the worker to be ready", every=0.3)

    def assert_alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}")

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return int(proc.returncode)

    def visitor_key(self, visitor_id: str) -> str:
        return f"{self.prefix}visitor:{visitor_id}"

    def records(self, visitor_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """Lookup records straight from Redis, following aliases of merged visitors."""
        pipe = self.redis.pipeline(transaction=False)
        for vid in visitor_ids:
            pipe.get(self.visitor_key(vid))
            pipe.get(f"{self.prefix}alias:{vid}")
        raw = pipe.execute()
        docs = dict(zip(visitor_ids, raw[0::2], strict=True))
        aliases = {v: a for v, a in zip(visitor_ids, raw[1::2], strict=True) if a}
        if aliases:
            targets = self.redis.mget([self.visitor_key(a) for a in aliases.values()])
            docs.update(zip(aliases, targets, strict=True))
        return {v: json.loads(d) if d else None for v, d in docs.items()}

    def counts(self, visitor_ids: list[str]) -> dict[str, int]:
        return {v: (d or {}).get("events", 0) for v, d in self.records(visitor_ids).items()}

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.http.close()
        keys = list(self.redis.scan_iter(match=f"{self.prefix}*"))
        if keys:
            self.redis.delete(*keys)
        self.redis.close()


def simulated_traffic(seed: int, visitors: int) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Simulated visitors (5% labelled): each visitor's event count, and all their events
    visitor by visitor."""
    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=seed, labelled_fraction=0.05)
    generated = list(sim.visitors(visitors))
    expected = {v.visitor_id: len(v.events) for v in generated}
    return expected, [e for v in generated for e in v.events]


def produce(producer: Any, topic: str, events: list[dict[str, Any]]) -> None:
    """Send events keyed by visitor id straight to Kafka (kafka-python producer), then flush."""
    for e in events:
        producer.send(topic, key=str(e["visitor_id"]).encode(), value=json.dumps(e).encode())
    producer.flush()


@pytest.fixture
def isolated_engine(kafka_bootstrap: str, redis_url: str) -> Iterator[Engine]:
    """An engine of the test's own (topics, group, keys); processes started by the test."""
    eng = Engine(kafka_bootstrap, redis_url, uuid.uuid4().hex[:8])
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    kafka = request.getfixturevalue("kafka_bootstrap")
    redis_url = request.getfixturevalue("redis_url")
    eng = Engine(kafka, redis_url, uuid.uuid4().hex[:8])
    eng.start("api")
    eng.start("worker")
    try:
        eng.wait_api()
        eng.wait_worker()
        yield eng
    except BaseException:
        for name in ("api", "worker"):
            sys.stderr.write(f"\n----- {name} log -----\n{eng.log(name)[-6000:]}\n")
        raise
    finally:
        eng.close()


@contextmanager
def demo_site(
    kafka_bootstrap: str, redis_url: str, **extra_env: str
) -> Iterator[tuple[Engine, str]]:
    """An engine (API and worker) and the demo website, whose origin CORS allows; yields
    the engine and the site's URL; prints the logs of all three when the block fails."""
    demo_port = free_port()
    demo_url = f"http://127.0.0.1:{demo_port}"
    eng = Engine(
        kafka_bootstrap,
        redis_url,
        uuid.uuid4().hex[:8],
        PERSONA_CORS_ORIGINS=json.dumps([demo_url]),
        **extra_env,
    )  # the demo's tracker sends the engine's write key (the first of PERSONA_WRITE_KEYS)
    eng.start("api")
    eng.start("worker")
    log = open(eng.tmp / "demo.log", "ab")  # noqa: SIM115 - closed with the process
    eng.procs["demo"] = subprocess.Popen(
        [
            *(sys.executable, "-m", "stream_app.cli", "demo", "--port", str(demo_port)),
            *("--api-url", f"http://127.0.0.1:{eng.api_port}"),
        ],
        cwd=REPO,
        env=eng.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        eng.wait_api()
        eng.wait_worker()

        def demo_up() -> bool:
            eng.assert_alive("demo")
            try:
                return httpx.get(demo_url + "/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(demo_up, 30, "the demo site to answer")
        yield eng, demo_url
    except BaseException:
        for name in ("api", "worker", "demo"):
            sys.stderr.write(f"\n----- {name} log -----\n{eng.log(name)[-6000:]}\n")
        raise
    finally:
        eng.close()
