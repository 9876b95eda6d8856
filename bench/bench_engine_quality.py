"""The oracle measurement through the running engine, not the model in-process.

    .venv/bin/python bench/bench_engine_quality.py [--kind markov] [--labelled 0.1]

Needs the local broker and Redis (``bash deploy/local/infra.sh start``). A world of
``models.worlds`` (sample catalog) is produced to a fresh events topic and processed by one
``persona-stream worker`` process (pipeline, trainer agent, model publication and hot swap,
Redis), exactly as live traffic would be:

1. training traffic until 2,000 labels: ``--labelled`` of its visitors carry a label (1.0:
   labelled visitors only), the others teach through soft examples when the engine's
   ``PERSONA_UNLABELLED_*`` settings allow (defaults unless set in the environment);
2. the worker catches up and its model stops changing (no new version for 15 s);
3. 1,000 held-out visitors, unlabelled; their lookup records (the probabilities the engine
   stored after each visitor's last event) are scored against the truth and against the
   world's exact posterior (the oracle): log loss, accuracy, ECE and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
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

from bench_engine import Worker, probe_event  # noqa: E402
from kafka import KafkaProducer  # noqa: E402
from redis import Redis  # noqa: E402

from models.catalog import Catalog  # noqa: E402
from models.evaluation import evaluate  # noqa: E402
from models.worlds import World  # noqa: E402
from stream_app.settings import DEFAULT_CATALOG, Settings  # noqa: E402

LABELS = 2000
HELD_OUT = 1000


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def produce(producer: KafkaProducer, topic: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        producer.send(topic, key=event["visitor_id"].encode(), value=json.dumps(event).encode())
    producer.flush()


def probe_version(producer: KafkaProducer, topic: str, redis: Redis, prefix: str) -> int:
    """The model version the worker scores with now: one fresh visitor's record (the
    /metrics gauge only moves when a batch is processed)."""
    event = probe_event()
    vid = event["visitor_id"]
    produce(producer, topic, [event])
    wait_records(redis, prefix, {vid: 1}, 60)
    return int(json.loads(redis.get(f"{prefix}visitor:{vid}") or "{}")["model_version"])


def wait_records(redis: Redis, prefix: str, want: dict[str, int], timeout: float) -> float:
    """Until every visitor's record counts all its events; returns the seconds waited."""
    started = time.perf_counter()
    ids = list(want)
    while True:
        docs = redis.mget([f"{prefix}visitor:{v}" for v in ids])
        done = sum(
            1 for v, d in zip(ids, docs, strict=True) if d and json.loads(d)["events"] >= want[v]
        )
        if done == len(ids):
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"only {done} of {len(ids)} visitors complete after {timeout:.0f} s")
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="markov", choices=["sessions", "markov"])
    parser.add_argument("--labelled", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-q-{tag}-"))
    port = 16000 + int(tag[:3], 16) % 2000
    os.environ.update(
        {
            "PERSONA_TOPIC_EVENTS": f"benchq-{tag}.events",
            "PERSONA_TOPIC_DLQ": f"benchq-{tag}.dlq",
            "PERSONA_TOPIC_ASSIGNMENTS": f"benchq-{tag}.assignments",
            "PERSONA_TOPIC_MODELS": f"benchq-{tag}.models",
            "PERSONA_TOPIC_PARTITIONS": "4",
            "PERSONA_CONSUMER_GROUP": f"benchq-{tag}",
            "PERSONA_REDIS_PREFIX": f"benchq:{tag}:",
            "PERSONA_WORKER_WEB_PORT": str(port),
            "PERSONA_WORKER_DATA_DIR": str(tmp / "worker"),
        }
    )
    settings = Settings()
    prefix = settings.redis_prefix
    redis = Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    catalog = Catalog.load(DEFAULT_CATALOG)
    world = World(catalog, seed=args.seed, kind=args.kind)
    held_out = list(world.visitors(HELD_OUT))
    for v in held_out:
        v.events = [e for e in v.events if e["type"] != "label"]
    world.labelled_fraction = args.labelled
    training, labels = [], 0
    while labels < LABELS:
        v = next(world.visitors(1))
        labels += v.labelled
        training.append(v)
    print(
        f"# engine quality, world {args.kind}: {len(training):,} training visitors "
        f"({labels:,} labelled), then {HELD_OUT:,} held out; unlabelled weight "
        f"{settings.unlabelled_weight}, at most {settings.unlabelled_max_per_s:g} soft "
        "examples/s per worker"
    )

    import asyncio

    from stream_app.topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
    )
    worker = Worker(dict(os.environ), tmp / "worker.log")
    try:
        events = [e for v in training for e in v.events]
        produce(producer, settings.topic_events, events)
        waited = wait_records(
            redis,
            prefix,
            {v.visitor_id: sum(e["type"] != "label" for e in v.events) for v in training},
            900,
        )
        print(f"training traffic: {len(events):,} events processed {waited:.0f} s after produced")
        version, stable_since = None, time.perf_counter()
        while time.perf_counter() - stable_since < 15:
            now = probe_version(producer, settings.topic_events, redis, prefix)
            if now != version:
                version, stable_since = now, time.perf_counter()
            time.sleep(1)
        weight = metric(port, "persona_model_unlabelled_weight")
        print(f"model version {version} stable for 15 s; unlabelled weight in it {weight}")
        produce(producer, settings.topic_events, [e for v in held_out for e in v.events])
        wait_records(redis, prefix, {v.visitor_id: len(v.events) for v in held_out}, 300)
        docs = redis.mget([f"{prefix}visitor:{v.visitor_id}" for v in held_out])
        records = [json.loads(d) for d in docs]
    finally:
        worker.stop()
    personas = catalog.persona_ids
    # Records carry 6 decimals: a probability stored as 0 is read as half that resolution.
    scored = [
        ({p: max(q, 5e-7) for p, q in r["personas"].items()}, v.persona)
        for r, v in zip(records, held_out, strict=True)
    ]
    model = evaluate(scored, personas)
    oracle = evaluate(((v.oracle, v.persona) for v in held_out), personas)
    versions = sorted({r["model_version"] for r in records})
    print(
        f"engine: log loss {model['log_loss']:.3f}, accuracy {model['accuracy']:.3f}, "
        f"ECE {model['ece']:.3f}; oracle {oracle['log_loss']:.3f} / {oracle['accuracy']:.3f} / "
        f"{oracle['ece']:.3f}; ratio {model['log_loss'] / oracle['log_loss']:.3f} "
        f"(model versions in the records: {versions[0]}-{versions[-1]})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
