"""Micro-bench of event decoding + validation: µs per event, old vs new, in one process.

    .venv/bin/python bench/bench_validate.py [--baseline REV] [--events 2000] [--rounds 7]

"old" is ``stream_app/events/{pii,schema,validate}.py`` as of ``--baseline`` (default: the
commit before the fast path was added), loaded from git beside the current code, so both
run back to back on the same machine state. Events are simulated traffic
(``models.simulator``: page views, touchpoints i.e. Segment ``track``, feedback, identify,
label) plus consent events. Measured, per kind:

- ``single``: ``validate_event(obj)`` (the collector's and Segment calls' path per event);
- ``batch``: ``validate_batch`` of 500 events of that kind, per event;
- ``decode``: ``from_json_bytes(raw)`` (the worker's decode step: bytes -> validated event);
- ``refused``: an invalid page view (several bad fields), which always takes the full path.

``traffic`` is the simulator's stream as it comes (``--traffic`` events: ≈78% page views,
15% touchpoints, 4% feedback, 2.5% identify, a few labels), for the last three cases:

- ``collect``: ``validate_batch`` + ``to_json_bytes`` of batches of 500 (the collector's
  CPU per event before the Kafka send);
- ``pipeline``: the worker's whole ``Pipeline.process`` (decode -> ... -> emit, today's
  model, a dict for the states) in batches of 500 with the old and the new
  ``from_json_bytes``: what the decode step's saving is worth per event of the worker;
- ``route``: ``POST /v1/events`` in batches of 500 through the ASGI app in-process (body
  read, validation, location, IP removal, encoding; a producer that drops the messages; a
  write key; no HTTP server): the collector's CPU per event with the old and new validation.

Prints the minimum over ``--rounds`` rounds (old and new interleaved) and the load.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", category=DeprecationWarning)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.catalog import Catalog  # noqa: E402
from models.simulator import Simulator  # noqa: E402
from stream_app.events import validate as new  # noqa: E402
from stream_app.settings import DEFAULT_CATALOG  # noqa: E402

BATCH = 500
KINDS = ("page_view", "touchpoint", "feedback", "identify", "label", "consent")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout


def default_baseline() -> str:
    added = _git("log", "--diff-filter=A", "--format=%H", "--", "stream_app/events/fastpath.py")
    commits = added.split()
    return f"{commits[-1]}^" if commits else "HEAD"


def load_baseline(rev: str) -> types.ModuleType:
    """The events package's validate module as of ``rev``, as module ``_baseline_events``."""
    package = types.ModuleType("_baseline_events")
    package.__path__ = []
    sys.modules["_baseline_events"] = package
    module = package
    for name in ("pii", "schema", "validate"):
        source = _git("show", f"{rev}:stream_app/events/{name}.py")
        source = source.replace("stream_app.events.", "_baseline_events.")
        module = types.ModuleType(f"_baseline_events.{name}")
        module.__file__ = f"<{rev}:stream_app/events/{name}.py>"
        sys.modules[module.__name__] = module
        setattr(package, name, module)
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def simulated(per_kind: int) -> dict[str, list[dict[str, Any]]]:
    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=3, labelled_fraction=0.2)
    events: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for event in sim.stream(per_kind * 4, concurrency=500):
        bucket = events[event["type"]]
        if len(bucket) < per_kind:
            bucket.append(json.loads(json.dumps(event)))
        if all(len(events[k]) >= per_kind for k in KINDS if k != "consent"):
            break
    for i, page in enumerate(events["page_view"][:per_kind]):
        events["consent"].append(
            {
                "event_id": f"consent-{i}",
                "type": "consent",
                "visitor_id": page["visitor_id"],
                "ts": page["ts"],
                "status": "opt_out" if i % 2 else "opt_in",
                "source": "banner",
            }
        )
    return events


def per_event(fn: Callable[[], int], rounds: int) -> float:
    """µs per event: the best of ``rounds`` runs of ``fn`` (which returns its event count)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        n = fn()
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


def pipeline_case(raws: list[bytes]) -> Callable[[Any], Callable[[], int]]:
    """``Pipeline.process`` with the given module's ``from_json_bytes`` as its decoder."""
    from stream_app.worker import pipeline as worker_pipeline
    from stream_app.worker.model_holder import ModelHolder

    holder = ModelHolder(Catalog.load(DEFAULT_CATALOG), 7 * 24 * 3600.0)
    messages = [
        worker_pipeline.RawMessage(
            json.loads(raw)["visitor_id"].encode(), raw, f"bench/0@{i}", False
        )
        for i, raw in enumerate(raws)
    ]

    def make(mod: Any) -> Callable[[], int]:
        def run() -> int:
            worker_pipeline.from_json_bytes = mod.from_json_bytes  # type: ignore[attr-defined]
            pipeline = worker_pipeline.Pipeline(holder, dedup_window=64)
            table: dict[str, Any] = {}
            for i in range(0, len(messages), BATCH):
                result = pipeline.process(messages[i : i + BATCH], table.get)
                table.update(result.states)
            return len(messages)

        return run

    return make


def route_case(items: list[dict[str, Any]]) -> Callable[[Any], Callable[[], int]]:
    """``POST /v1/events`` batches of 500 through the ASGI app with the given module's
    ``validate_batch`` and ``to_json_bytes`` in the collector's routes."""
    import asyncio
    from collections.abc import Sequence

    import httpx
    import orjson
    from pydantic import SecretStr

    from stream_app.api.app import create_app
    from stream_app.collector import routes
    from stream_app.collector.producer import EventProducer
    from stream_app.settings import Settings
    from stream_app.store.memory_store import MemoryStore

    class DropProducer(EventProducer):
        async def send_events(
            self, events: Sequence[dict[str, Any]], payloads: Sequence[bytes]
        ) -> None:
            assert len(events) == len(payloads)

    settings = Settings(write_keys=[SecretStr("wk-bench")])
    app = create_app(
        settings, store=MemoryStore(), producer=DropProducer(settings), create_topics=False
    )
    bodies = [orjson.dumps({"events": items[i : i + BATCH]}) for i in range(0, len(items), BATCH)]
    headers = {"content-type": "application/json", "authorization": "Bearer wk-bench"}
    loop = asyncio.new_event_loop()

    async def post_all() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for body in bodies:
                r = await client.post("/v1/events", content=body, headers=headers)
                assert r.status_code == 202 and not r.json()["rejected"], r.text[:300]

    def make(mod: Any) -> Callable[[], int]:
        def run() -> int:
            routes.validate_batch = mod.validate_batch  # type: ignore[attr-defined]
            routes.to_json_bytes = mod.to_json_bytes  # type: ignore[attr-defined]
            loop.run_until_complete(post_all())
            return len(items)

        return run

    return make


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="git revision of the old code")
    parser.add_argument("--events", type=int, default=2000, help="events per kind")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--traffic", type=int, default=5000, help="events of simulated traffic")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the pipeline case")
    parser.add_argument("--no-route", action="store_true", help="skip the collector route case")
    args = parser.parse_args()
    rev = args.baseline or default_baseline()
    old = load_baseline(rev)
    events = simulated(args.events)
    raws = {k: [new.to_json_bytes(new.validate_event(e)) for e in v] for k, v in events.items()}
    personas = frozenset(Catalog.load(DEFAULT_CATALOG).persona_ids)
    now = datetime.now(UTC)
    paths = {"old": old, "new": new}

    def single(mod: Any, items: list[dict[str, Any]]) -> Callable[[], int]:
        def run() -> int:
            for item in items:
                mod.validate_event(item, now=now, personas=personas)
            return len(items)

        return run

    def batch(mod: Any, items: list[dict[str, Any]]) -> Callable[[], int]:
        def run() -> int:
            for i in range(0, len(items), BATCH):
                _, rejected = mod.validate_batch(items[i : i + BATCH], personas=personas)
                assert not rejected
            return len(items)

        return run

    def decode(mod: Any, items: list[bytes]) -> Callable[[], int]:
        def run() -> int:
            for raw in items:
                mod.from_json_bytes(raw)
            return len(items)

        return run

    def collect(mod: Any, items: list[dict[str, Any]]) -> Callable[[], int]:
        def run() -> int:
            for i in range(0, len(items), BATCH):
                accepted, _ = mod.validate_batch(items[i : i + BATCH], personas=personas)
                [mod.to_json_bytes(e) for e in accepted]
            return len(items)

        return run

    def refused(mod: Any, items: list[dict[str, Any]]) -> Callable[[], int]:
        bad = [{**e, "dwell_ms": -1, "visitor_id": "a\x00b", "url": "ftp://x/"} for e in items]

        def run() -> int:
            for item in bad:
                with contextlib.suppress(mod.EventValidationError):
                    mod.validate_event(item, now=now)
            return len(bad)

        return run

    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=4, labelled_fraction=0.02)
    stream = itertools.islice(sim.stream(args.traffic, concurrency=500), args.traffic)
    traffic = [json.loads(json.dumps(e)) for e in stream]
    traffic_raw = [new.to_json_bytes(new.validate_event(e)) for e in traffic]
    cases: list[tuple[str, str, Callable[[Any], Callable[[], int]]]] = []
    for kind in KINDS:
        items, raw = events[kind], raws[kind]
        cases.append((kind, "single", lambda m, items=items: single(m, items)))
        cases.append((kind, "batch", lambda m, items=items: batch(m, items)))
        cases.append((kind, "decode", lambda m, raw=raw: decode(m, raw)))
    cases.append(("traffic", "collect", lambda m: collect(m, traffic)))
    cases.append(("page_view", "refused", lambda m: refused(m, events["page_view"][:500])))
    if not args.no_pipeline:
        cases.append(("traffic", "pipeline", pipeline_case(traffic_raw)))
    if not args.no_route:
        cases.append(("traffic", "route", route_case(traffic)))

    print(f"old: {_git('log', '-1', '--format=%h %s', rev)[:90].strip()}")
    counts = ", ".join(f"{k} {sum(e['type'] == k for e in traffic)}" for k in KINDS)
    print(f"{args.events} events per kind; traffic: {counts}; best of {args.rounds} rounds")
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1/5 min)")
    print(f"{'kind':<11} {'path':<8} {'old µs':>8} {'new µs':>8} {'speed-up':>8}")
    for kind, path, make in cases:
        runs = {name: make(mod) for name, mod in paths.items()}
        for run in runs.values():
            run()  # warm-up: caches (the model's, the user-agent parser's)
        results: dict[str, float] = {}
        for _ in range(args.rounds):  # interleaved: old, new, old, new, ...
            for name, run in runs.items():
                results[name] = min(results.get(name, float("inf")), per_event(run, 1))
        ratio = results["old"] / results["new"]
        print(f"{kind:<11} {path:<8} {results['old']:>8.1f} {results['new']:>8.1f} {ratio:>7.1f}x")
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1/5 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
