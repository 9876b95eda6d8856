"""Ceilings of one process on this machine: how fast can anything consume the events topic?

    .venv/bin/python bench/bench_ceilings.py [--events 100000] [--runs 2]

Needs the local broker (``bash deploy/local/infra.sh start``). Pre-loads a fresh topic with
simulated traffic (as ``bench_engine.py`` does), then measures, each in a fresh process
and consumer group, events/s from the first record to the last:

1. ``aiokafka getmany``: a bare ``AIOKafkaConsumer`` draining the topic (no processing);
   and the same feeding our pipeline and the Redis write, state in a dict (no changelog):
   what a hot path outside faust streams could reach before making its state durable.
2. ``faust take_events``: a faust agent that does nothing with its batches, with the
   worker's settings and with variants of batch size and consumer settings.
3. ``faust + table``: the same agent writing one value of ``--state-bytes`` per visitor
   per batch to a changelog-backed table (the worker's state write, coalesced per batch).

The gap between these and the worker (``bench_engine.py``) is the cost of our own work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", category=DeprecationWarning)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BOOTSTRAP = "127.0.0.1:9092"


def preload(bootstrap: str, topic: str, n: int, partitions: int) -> int:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from models.catalog import Catalog
    from models.simulator import Simulator
    from stream_app.settings import DEFAULT_CATALOG

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()
    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=3, labelled_fraction=0.02)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
    )
    sent = 0
    for event in sim.stream(n // 8 + 1, concurrency=500):
        producer.send(topic, key=event["visitor_id"].encode(), value=json.dumps(event).encode())
        sent += 1
        if sent >= n:
            break
    producer.flush()
    producer.close()
    return sent


def fresh_consumer(bootstrap: str, topic: str, **options: Any) -> Any:
    """An aiokafka consumer of its own group, reading the topic from the beginning."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"ceiling-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **options,
    )


async def raw_getmany(bootstrap: str, topic: str, n: int, max_records: int = 1000) -> float:
    consumer = fresh_consumer(
        bootstrap,
        topic,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    seen, t0 = 0, 0.0
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            for records in batches.values():
                if not t0 and records:
                    t0 = time.perf_counter()
                seen += len(records)
        return seen / (time.perf_counter() - t0)
    finally:
        await consumer.stop()


async def getmany_pipeline(bootstrap: str, topic: str, n: int) -> float:
    """aiokafka getmany + our pipeline + the Redis write, state in a dict (not durable)."""
    from models.catalog import Catalog
    from stream_app.settings import DEFAULT_CATALOG, Settings
    from stream_app.store.redis_store import RedisStore
    from stream_app.worker.model_holder import ModelHolder
    from stream_app.worker.pipeline import Pipeline, RawMessage

    prefix = f"ceiling:{uuid.uuid4().hex[:8]}:"
    store = RedisStore.from_url(Settings().redis_url.get_secret_value(), prefix=prefix)
    pipeline = Pipeline(ModelHolder(Catalog.load(DEFAULT_CATALOG), 7 * 24 * 3600.0))
    table: dict[str, Any] = {}
    consumer = fresh_consumer(bootstrap, topic)
    await consumer.start()
    seen, t0 = 0, 0.0
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            messages = [
                RawMessage(r.key, r.value, f"{r.topic}/{r.partition}@{r.offset}")
                for records in batches.values()
                for r in records
            ]
            if not messages:
                continue
            if not t0:
                t0 = time.perf_counter()
            result = pipeline.process(messages, table.get)
            table.update(result.states)
            await store.write(result.writes)
            seen += len(messages)
        return seen / (time.perf_counter() - t0)
    finally:
        await consumer.stop()
        keys = [k async for k in store._r.scan_iter(match=f"{prefix}*", count=5000)]
        for i in range(0, len(keys), 5000):
            await store._r.delete(*keys[i : i + 5000])
        await store.close()


def faust_child(args: argparse.Namespace) -> None:
    """Runs in a subprocess: a faust worker whose agent counts events, then prints the rate."""
    import faust
    import orjson

    settings: dict[str, Any] = json.loads(args.faust_settings)
    app = faust.App(
        f"ceiling-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=tempfile.mkdtemp(prefix="ceiling-"),
        autodiscover=False,
        **settings,
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes)
    table = app.Table(
        "state", default=None, partitions=args.partitions, key_type=bytes, use_partitioner=True
    )
    filler = {"x": "a" * max(0, args.state_bytes - 8)}
    state = {"seen": 0, "t0": 0.0}

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for batch in stream.take_events(args.take, within=args.within):
            if not state["t0"]:
                state["t0"] = time.perf_counter()
            if args.state_bytes:
                for key in {e.message.key for e in batch}:
                    table[key] = filler
            state["seen"] += len(batch)
            if state["seen"] >= args.events:
                rate = state["seen"] / (time.perf_counter() - state["t0"])
                print(f"RATE {rate:.1f}", flush=True)
                os._exit(0)

    del orjson  # imported so faust's JSON codec uses it, as in the worker
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


def run_faust(args: argparse.Namespace, topic: str, n: int, **variant: Any) -> float:
    take = variant.pop("take", 1000)
    within = variant.pop("within", 0.1)
    state_bytes = variant.pop("state_bytes", 0)
    cmd = [
        sys.executable,
        __file__,
        "--faust-child",
        *("--topic", topic, "--events", str(n), "--take", str(take), "--within", str(within)),
        *("--state-bytes", str(state_bytes), "--partitions", str(args.partitions)),
        *("--faust-settings", json.dumps(variant), "--bootstrap", args.bootstrap),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    for line in (out.stdout + out.stderr).splitlines():
        if "RATE " in line:  # faust routes stdout through its logger
            return float(line.split("RATE ", 1)[1].split()[0])
    raise SystemExit(f"faust child failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")


def report(name: str, rates: list[float]) -> None:
    print(
        f"{name:<62} median {statistics.median(rates):>8,.0f} events/s  "
        f"({', '.join(f'{r:,.0f}' for r in rates)})",
        flush=True,
    )


WORKER = {"stream_buffer_maxsize": 8192, "producer_linger_ms": 5, "broker_commit_interval": 1.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap", default=BOOTSTRAP)
    parser.add_argument("--only", default="", help="comma-separated names of cases to run")
    parser.add_argument("--faust-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--take", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--within", type=float, default=0.1, help=argparse.SUPPRESS)
    parser.add_argument("--state-bytes", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--faust-settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.faust_child:
        faust_child(args)
        return 0

    topic = f"ceiling-{uuid.uuid4().hex[:8]}.events"
    started = time.perf_counter()
    n = preload(args.bootstrap, topic, args.events, args.partitions)
    print(f"# {n} events pre-loaded into {topic} in {time.perf_counter() - started:.1f}s")
    cases: list[tuple[str, Any]] = [
        ("aiokafka getmany (max_records 1000)", lambda: raw_getmany(args.bootstrap, topic, n)),
        (
            "aiokafka getmany + our pipeline + Redis write (no changelog)",
            lambda: getmany_pipeline(args.bootstrap, topic, n),
        ),
        ("faust take_events(1000, 0.1 s), worker settings", dict(WORKER)),
        ("faust take_events(1000, 0.02 s), worker settings", dict(WORKER, within=0.02)),
        ("faust take_events(4000, 0.1 s), worker settings", dict(WORKER, take=4000)),
        (
            "faust take_events(1000, 0.1 s), max_poll 5000, buffer 32k",
            dict(WORKER, broker_max_poll_records=5000, stream_buffer_maxsize=32768),
        ),
        ("faust + table, 2 KB per visitor per batch", dict(WORKER, state_bytes=2048)),
        ("faust + table, 200 B per visitor per batch", dict(WORKER, state_bytes=200)),
        (
            "faust + table, 2 KB, producer linger 50 ms, batches of 1 MB",
            dict(
                WORKER,
                state_bytes=2048,
                producer_linger_ms=50,
                producer_max_batch_size=1024 * 1024,
            ),
        ),
    ]
    only = {c.strip() for c in args.only.split(",") if c.strip()}
    try:
        for name, case in cases:
            if only and not any(o in name for o in only):
                continue
            rates = []
            for _ in range(args.runs):
                if callable(case):
                    rates.append(asyncio.run(case()))
                else:
                    rates.append(run_faust(args, topic, n, **dict(case)))
            report(name, rates)
    finally:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
        admin.delete_topics([topic])
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
