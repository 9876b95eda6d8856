"""The worker's batch path in-process: Redis for real, Kafka faked (no broker), under
CPU time, optionally under cProfile.

    .venv/bin/python bench/bench_batch.py [--events 30000] [--batch 1000] [--profile]

Feeds the simulated traffic of ``bench_engine.py`` as consumed records through
:class:`~stream_app.worker.batch.BatchProcessor` (read states, pipeline, pack, commit,
offsets) and the worker's per-batch bookkeeping (metrics, live stats, discovery), one
batch after the other. Prints CPU µs per event of the whole and of each part: the signal
to optimise on a shared machine, where wall time depends on the neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
import uuid
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis  # noqa: E402

from models.catalog import Catalog  # noqa: E402
from models.simulator import Simulator  # noqa: E402
from stream_app.metrics import WorkerMetrics  # noqa: E402
from stream_app.settings import DEFAULT_CATALOG, Settings  # noqa: E402
from stream_app.store.state_store import StateStore  # noqa: E402
from stream_app.worker.batch import VISITOR_CODEC, BatchProcessor, Effect, Record  # noqa: E402
from stream_app.worker.housekeeping import record_batch  # noqa: E402
from stream_app.worker.live_stats import LiveStats  # noqa: E402
from stream_app.worker.model_holder import ModelHolder  # noqa: E402
from stream_app.worker.pipeline import Pipeline  # noqa: E402


class NoKafka:
    async def send_all(self, effects: list[Effect]) -> None:
        return None


def make_records(n: int, partitions: int = 4) -> list[Record]:
    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=3, labelled_fraction=0.02)
    offsets = [0] * partitions
    out = []
    now_ms = int(time.time() * 1000)
    for i, event in enumerate(sim.stream(n // 8 + 1, concurrency=500)):
        if i >= n:
            break
        key = event["visitor_id"].encode()
        p = hash(key) % partitions
        out.append(Record("bench.events", p, offsets[p], key, json.dumps(event).encode(), now_ms))
        offsets[p] += 1
    return out


async def memory_per_visitor(redis: Redis, prefix: str) -> None:
    """Redis bytes per visitor by kind of key (MEMORY USAGE of every key of the run: the
    shared Redis's other tenants do not count, unlike a used_memory difference)."""
    by_kind: dict[str, int] = {}
    visitors = 0
    async for key in redis.scan_iter(match=f"{prefix}*", count=5000):
        kind = key.decode()[len(prefix) :].split(":")[0]
        by_kind[kind] = by_kind.get(kind, 0) + int(await redis.memory_usage(key, samples=0) or 0)
        visitors += kind == "visitor"
    total = sum(by_kind.values())
    parts = ", ".join(f"{k} {v / max(visitors, 1):,.0f}" for k, v in sorted(by_kind.items()))
    per = total / max(visitors, 1)
    print(f"redis: {visitors} visitors, {per:,.0f} bytes per visitor ({parts})")


async def run(records: list[Record], batch: int, prof: cProfile.Profile | None) -> None:
    settings = Settings()
    catalog = Catalog.load(DEFAULT_CATALOG)
    prefix = f"bench-batch:{uuid.uuid4().hex[:8]}:"
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    states = StateStore(
        redis,
        prefix=prefix,
        group="bench",
        events_topic="bench.events",
        ttl_s=3600,
        personas=catalog.persona_ids,
        codec=VISITOR_CODEC,
    )
    holder = ModelHolder(catalog, 7 * 24 * 3600.0)
    processor = BatchProcessor(
        Pipeline(holder, dedup_window=settings.dedup_window),
        states,
        NoKafka(),
        events_topic="bench.events",
        control_topic="bench.control",
        dlq_topic="bench.dlq",
        assignments_topic="bench.assignments",
        training_topic="bench.training",
        ttl_s=3600,
    )
    metrics, live = WorkerMetrics(), LiveStats()
    run_id, _ = await states.read_offsets()
    parts = dict.fromkeys(("read+pipeline", "pack", "apply", "bookkeeping"), 0.0)
    try:
        if prof:
            prof.enable()
        cpu0 = time.process_time()
        for i in range(0, len(records), batch):
            chunk = records[i : i + batch]
            c = time.process_time()
            prepared = await processor.prepare(chunk)
            parts["read+pipeline"] += time.process_time() - c
            c = time.process_time()
            packed = processor.pack(prepared)
            parts["pack"] += time.process_time() - c
            c = time.process_time()
            outcome = await processor.apply(packed, run_id)
            parts["apply"] += time.process_time() - c
            c = time.process_time()
            record_batch(metrics, outcome, holder, settings)
            live.record(outcome.result, outcome.latencies)
            parts["bookkeeping"] += time.process_time() - c
        total = time.process_time() - cpu0
        if prof:
            prof.disable()
        n = len(records)
        print(
            f"{n} events, batch {batch}: {1e6 * total / n:.1f} µs CPU per event ("
            + ", ".join(f"{k} {1e6 * v / n:.1f}" for k, v in parts.items())
            + ")"
        )
        await memory_per_visitor(redis, prefix)
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=5000)]
        for j in range(0, len(keys), 5000):
            await redis.delete(*keys[j : j + 5000])
        for p in catalog.persona_ids:
            await redis.delete(f"{prefix}audience:{p}")
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    records = make_records(args.events)
    if args.profile:
        prof = cProfile.Profile()
        asyncio.run(run(records, args.batch, prof))
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)
        return 0
    for _ in range(args.runs):
        asyncio.run(run(records, args.batch, None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
