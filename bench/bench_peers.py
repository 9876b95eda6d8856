"""The same work on the same topic by three designs, and the worker's rebalance time.

    .venv/bin/python bench/bench_peers.py [--events 100000] [--runs 2] [--only NAMES]

Needs the local broker and Redis. Pre-loads one topic with simulated traffic (as
``bench_ceilings.py`` does), then each case, in a fresh process and consumer group,
decodes and validates every event with the project's validator, runs the project's
pipeline and mapper, and writes the lookup records to Redis:

(a) ``worker``: ``persona-stream worker`` itself (states durable in Redis, batch-native);
    timed from its first stored offset to the last (the offsets hash in Redis).
(b) ``faust table``: the previous design, a faust agent (``take_events``) with the
    visitor states in a changelog-backed faust table and the pipelined Redis write.
    Kept here as a bench case only; it is not product code any more.
(c) ``kafka-python``: a plain ``KafkaConsumer.poll`` loop with the states in a dict (not
    durable) and a pipelined ``SET`` of each record.

Prints events/s for each and the worker's ratio to each. ``rebalance``: a worker runs
under steady traffic, a second joins; the time from the second's start until both have
processed events since (both ``/metrics`` counters move).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", category=DeprecationWarning)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ceilings import preload  # noqa: E402

BOOTSTRAP = "127.0.0.1:9092"
REDIS = "redis://127.0.0.1:6379/0"


def rate_line(name: str, rates: list[float]) -> str:
    return (
        f"{name:<14} median {statistics.median(rates):>8,.0f} events/s  "
        f"({', '.join(f'{r:,.0f}' for r in rates)})"
    )


# -- (a) the worker --------------------------------------------------------------------
def worker_env(topic: str, partitions: int, tag: str, port: int) -> dict[str, str]:
    tmp = tempfile.mkdtemp(prefix=f"peers-{tag}-")
    return {
        **os.environ,
        "PERSONA_TOPIC_EVENTS": topic,
        "PERSONA_TOPIC_DLQ": f"peers-{tag}.dlq",
        "PERSONA_TOPIC_ASSIGNMENTS": f"peers-{tag}.assignments",
        "PERSONA_TOPIC_MODELS": f"peers-{tag}.models",
        "PERSONA_TOPIC_PARTITIONS": str(partitions),
        "PERSONA_CONSUMER_GROUP": f"peers-{tag}",
        "PERSONA_REDIS_PREFIX": f"peers:{tag}:",
        "PERSONA_WORKER_WEB_PORT": str(port),
        "PERSONA_WORKER_DATA_DIR": str(Path(tmp) / "worker"),
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "stream_app.cli", "worker", "--loglevel", "warning"],
        cwd=ROOT,
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def clean_redis(prefix: str) -> None:
    from redis import Redis

    r = Redis.from_url(REDIS)
    keys = list(r.scan_iter(match=f"{prefix}*", count=5000))
    for i in range(0, len(keys), 5000):
        r.delete(*keys[i : i + 5000])
    r.close()


def run_worker(topic: str, n: int, partitions: int) -> float:
    from redis import Redis

    tag = uuid.uuid4().hex[:8]
    env = worker_env(topic, partitions, tag, 17000 + int(tag[:3], 16) % 2000)
    r = Redis.from_url(REDIS, decode_responses=True)
    key = f"{env['PERSONA_REDIS_PREFIX']}offsets:{env['PERSONA_CONSUMER_GROUP']}"
    proc = start_worker(env, Path(tempfile.mkdtemp()) / "worker.log")
    try:
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = sum(int(v) for f, v in r.hgetall(key).items() if f.startswith(f"{topic}:"))
            now = time.perf_counter()
            if done and first is None:
                first = (now, done)
            if done >= n and first is not None:
                return (done - first[1]) / (now - first[0])
            if proc.poll() is not None:
                raise SystemExit("the worker exited")
            time.sleep(0.05)
        raise SystemExit("the worker did not finish")
    finally:
        stop(proc)
        clean_redis(env["PERSONA_REDIS_PREFIX"])


# -- (b) faust agent + changelog table (the previous design) ----------------------------
def faust_table_child(args: argparse.Namespace) -> None:
    import faust

    from models.catalog import Catalog
    from stream_app.settings import DEFAULT_CATALOG
    from stream_app.store.redis_store import RedisStore
    from stream_app.worker.model_holder import ModelHolder
    from stream_app.worker.pipeline import Pipeline, RawMessage
    from stream_app.worker.visitor_state import VisitorState

    app = faust.App(
        f"peers-faust-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=tempfile.mkdtemp(prefix="peers-"),
        autodiscover=False,
        stream_buffer_maxsize=8192,
        producer_linger_ms=5,
        broker_commit_interval=1.0,
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes)
    visitors = app.Table(
        "visitors", default=None, partitions=args.partitions, key_type=bytes, use_partitioner=True
    )
    prefix = f"peers-faust:{uuid.uuid4().hex[:8]}:"
    stores: list[RedisStore] = []
    pipeline = Pipeline(ModelHolder(Catalog.load(DEFAULT_CATALOG), 7 * 24 * 3600.0))
    state = {"seen": 0, "t0": 0.0}

    def get_state(vid: str) -> VisitorState | None:
        raw = visitors.get(vid.encode())
        return VisitorState.decode(raw, vid) if raw else None

    @app.agent(topic)
    async def process(stream: Any) -> None:
        if not stores:
            stores.append(RedisStore.from_url(REDIS, prefix=prefix))
        async for batch in stream.take_events(1000, within=0.05):
            if not state["t0"]:
                state["t0"] = time.perf_counter()
            messages = [
                RawMessage(e.message.key, e.message.value, f"p{e.message.partition}") for e in batch
            ]
            result = pipeline.process(messages, get_state)
            for vid, s in result.states.items():
                visitors[vid.encode()] = s.encode()  # the changelog value
            await stores[0].write(result.writes)
            state["seen"] += len(batch)
            if state["seen"] >= args.events:
                rate = state["seen"] / (time.perf_counter() - state["t0"])
                print(f"RATE {rate:.1f}", flush=True)
                clean_redis(prefix)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


# -- (c) a kafka-python poll loop, state in a dict ---------------------------------------
def kafka_python_child(args: argparse.Namespace) -> None:
    import orjson
    from kafka import KafkaConsumer
    from redis import Redis

    from models.catalog import Catalog
    from stream_app.settings import DEFAULT_CATALOG
    from stream_app.worker.model_holder import ModelHolder
    from stream_app.worker.pipeline import Pipeline, RawMessage

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=f"peers-kp-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=1000,
    )
    r = Redis.from_url(REDIS)
    prefix = f"peers-kp:{uuid.uuid4().hex[:8]}:"
    pipeline = Pipeline(ModelHolder(Catalog.load(DEFAULT_CATALOG), 7 * 24 * 3600.0))
    table: dict[str, Any] = {}
    seen, t0 = 0, 0.0
    while seen < args.events:
        polled = consumer.poll(timeout_ms=1000, max_records=1000)
        messages = [
            RawMessage(m.key, m.value, f"p{m.partition}") for ms in polled.values() for m in ms
        ]
        if not messages:
            continue
        if not t0:
            t0 = time.perf_counter()
        result = pipeline.process(messages, table.get)
        table.update(result.states)
        pipe = r.pipeline(transaction=False)
        for w in result.writes:
            pipe.set(f"{prefix}visitor:{w.visitor_id}", orjson.dumps(w.record), ex=3600)
        pipe.execute()
        seen += len(messages)
    print(f"RATE {seen / (time.perf_counter() - t0):.1f}", flush=True)
    consumer.close()
    clean_redis(prefix)


def run_child(args: argparse.Namespace, mode: str, topic: str, n: int) -> float:
    cmd = [
        sys.executable,
        __file__,
        mode,
        *("--topic", topic, "--events", str(n), "--partitions", str(args.partitions)),
        *("--bootstrap", args.bootstrap),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    for line in (out.stdout + out.stderr).splitlines():
        if "RATE " in line:
            return float(line.split("RATE ", 1)[1].split()[0])
    raise SystemExit(f"{mode} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")


# -- rebalance -----------------------------------------------------------------------------
def consumed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return -1.0
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("persona_worker_messages_consumed_total{")
    )


def rebalance(args: argparse.Namespace) -> float:
    from kafka import KafkaProducer

    from models.catalog import Catalog
    from models.simulator import Simulator
    from stream_app.settings import DEFAULT_CATALOG

    tag = uuid.uuid4().hex[:8]
    topic = f"peers-{tag}.events"
    ports = [18000 + int(tag[:3], 16) % 1000, 19000 + int(tag[:3], 16) % 1000]
    envs = [worker_env(topic, args.partitions, tag, p) for p in ports]
    logs = Path(tempfile.mkdtemp(prefix="rebalance-"))
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5)
    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=9, labelled_fraction=0.02)
    stream = sim.stream(100_000, concurrency=500)

    def send(k: int) -> None:
        for _ in range(k):
            e = next(stream)
            producer.send(topic, key=e["visitor_id"].encode(), value=json.dumps(e).encode())
        producer.flush()

    send(200)  # creates the topic (auto-create) before the first worker
    first = start_worker(envs[0], logs / "a.log")
    procs = [first]
    try:
        while consumed(ports[0]) <= 0:
            send(50)
            time.sleep(0.1)
        second_started = time.perf_counter()
        procs.append(start_worker(envs[1], logs / "b.log"))
        base_a, base_b = consumed(ports[0]), 0.0
        while True:
            send(50)  # ~500 events/s of steady traffic
            time.sleep(0.1)
            a, b = consumed(ports[0]), consumed(ports[1])
            if b > base_b and a > base_a:
                return time.perf_counter() - second_started
            if time.perf_counter() - second_started > 300:
                raise SystemExit(f"no rebalance within 300 s; logs in {logs}")
    finally:
        for p in procs:
            stop(p)
        producer.close()
        clean_redis(envs[0]["PERSONA_REDIS_PREFIX"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap", default=BOOTSTRAP)
    parser.add_argument("--only", default="", help="comma-separated: worker,faust,kafka,rebalance")
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "faust-table":
        faust_table_child(args)
        return 0
    if args.mode == "kafka-python":
        kafka_python_child(args)
        return 0
    only = {c.strip() for c in args.only.split(",") if c.strip()} or {
        "worker",
        "faust",
        "kafka",
        "rebalance",
    }
    print(f"# load average before: {os.getloadavg()}")
    rates: dict[str, list[float]] = {}
    if only - {"rebalance"}:
        topic = f"peers-{uuid.uuid4().hex[:8]}.events"
        started = time.perf_counter()
        n = preload(args.bootstrap, topic, args.events, args.partitions)
        print(f"# {n} events pre-loaded into {topic} in {time.perf_counter() - started:.1f}s")
        try:
            for _ in range(args.runs):  # interleaved: each run does every case once
                if "worker" in only:
                    rates.setdefault("(a) worker", []).append(run_worker(topic, n, args.partitions))
                if "faust" in only:
                    rates.setdefault("(b) faust table", []).append(
                        run_child(args, "faust-table", topic, n)
                    )
                if "kafka" in only:
                    rates.setdefault("(c) kafka-python", []).append(
                        run_child(args, "kafka-python", topic, n)
                    )
        finally:
            from kafka.admin import KafkaAdminClient

            admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
            admin.delete_topics([topic])
            admin.close()
        for name, values in rates.items():
            print(rate_line(name, values))
        mine = rates.get("(a) worker")
        if mine:
            for name, values in rates.items():
                if name != "(a) worker":
                    ratio = statistics.median(mine) / statistics.median(values)
                    print(f"worker / {name}: {ratio:.2f}x")
    if "rebalance" in only:
        print(
            f"rebalance: both workers processing {rebalance(args):.1f} s after the second started"
        )
    print(f"# load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
