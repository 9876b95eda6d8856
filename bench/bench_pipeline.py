"""The worker's pure pipeline in-process (no Kafka, no Redis), optionally under cProfile.

    .venv/bin/python bench/bench_pipeline.py [--events 100000] [--batch 1000] [--profile]

Feeds simulated traffic (the same generator and settings as ``bench_engine.py``) as raw
Kafka values through :class:`~stream_app.worker.pipeline.Pipeline` in batches, with a
dict standing in for Redis. Prints events/s of ``Pipeline.process`` alone and
with the per-batch work the worker adds besides I/O: the state encoding (as stored in
Redis) and the Redis record encoding. ``--profile`` prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", category=DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.catalog import Catalog  # noqa: E402
from models.simulator import Simulator  # noqa: E402
from stream_app.settings import DEFAULT_CATALOG  # noqa: E402
from stream_app.store.redis_store import encode_record  # noqa: E402
from stream_app.worker.model_holder import ModelHolder  # noqa: E402
from stream_app.worker.pipeline import Pipeline, RawMessage  # noqa: E402


def make_messages(n: int) -> list[RawMessage]:
    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=3, labelled_fraction=0.02)
    out = []
    for i, event in enumerate(sim.stream(n // 8 + 1, concurrency=500)):
        if i >= n:
            break
        out.append(
            RawMessage(
                event["visitor_id"].encode(), json.dumps(event).encode(), f"bench/0@{i}", False
            )
        )
    return out


def run(messages: list[RawMessage], batch: int, io_work: bool) -> tuple[float, float]:
    """(events/s of wall time, CPU µs per event: the signal on a shared machine)."""
    holder = ModelHolder(Catalog.load(DEFAULT_CATALOG), 7 * 24 * 3600.0)
    pipeline = Pipeline(holder, dedup_window=64)
    table: dict[str, Any] = {}
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(messages), batch):
        result = pipeline.process(messages[i : i + batch], table.get)
        for vid, state in result.states.items():
            table[vid] = state
            if io_work:
                state.encode()  # the state as stored in Redis
        if io_work:
            for w in result.writes:
                encode_record(w.record)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(messages) / wall, 1e6 * cpu / len(messages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    messages = make_messages(args.events)
    run(messages[:5000], args.batch, True)  # warm-up: imports, UA parser cache
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        rate, _ = run(messages, args.batch, True)
        prof.disable()
        print(f"(under cProfile: {rate:,.0f} events/s)")
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
        return 0
    for io_work in (False, True):
        runs = [run(messages, args.batch, io_work) for _ in range(args.runs)]
        rates, cpus = [r for r, _ in runs], [c for _, c in runs]
        what = "pipeline + state/record encoding" if io_work else "Pipeline.process alone"
        print(
            f"{what}: median {statistics.median(rates):,.0f} events/s, "
            f"{statistics.median(cpus):.1f} µs CPU per event (min {min(cpus):.1f}) "
            f"({', '.join(f'{r:,.0f}' for r in rates)}; {len(messages)} events, batch {args.batch})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
