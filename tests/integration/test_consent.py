"""Consent through the real worker: ``opt_out`` forgets the visitor (record, audiences,
identity) and later events are counted as opted out, not profiled; ``opt_in`` lets later
events profile the visitor afresh."""

from __future__ import annotations

import time
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.integration.conftest import Engine, produce, wait_until

warnings.filterwarnings("ignore", category=DeprecationWarning)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def page_view(vid: str) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "page_view",
        "visitor_id": vid,
        "ts": now(),
        "url": "https://acme.example/docs/api",
    }


def consent(vid: str, status: str) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "consent",
        "visitor_id": vid,
        "ts": now(),
        "status": status,
        "source": "banner",
    }


def opted_out_total(eng: Engine) -> float:
    port = eng.env["PERSONA_WORKER_WEB_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("persona_worker_events_opted_out_total "):
            return float(line.split()[-1])
    return 0.0


def test_opt_out_forgets_and_stops_profiling_until_opt_in(
    isolated_engine: Engine, kafka_bootstrap: str
) -> None:
    from kafka import KafkaProducer

    eng = isolated_engine
    vid = f"consent-{eng.tag}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    eng.start("worker")
    eng.wait_worker()
    produce(producer, eng.events_topic, [page_view(vid), page_view(vid)])
    wait_until(lambda: eng.counts([vid])[vid] == 2, 60, "the visitor's two events")

    produce(producer, eng.events_topic, [consent(vid, "opt_out")])
    wait_until(lambda: eng.records([vid])[vid] is None, 30, "the record to be forgotten")
    audiences = [k for k in eng.redis.scan_iter(match=f"{eng.prefix}audience:*")]
    assert all(eng.redis.zscore(k, vid) is None for k in audiences)

    produce(producer, eng.events_topic, [page_view(vid), page_view(vid)])
    wait_until(lambda: opted_out_total(eng) == 2, 30, "two events counted as opted out")
    time.sleep(1.0)
    assert eng.records([vid])[vid] is None, "an opted-out visitor is not profiled"

    produce(producer, eng.events_topic, [consent(vid, "opt_in")])
    time.sleep(1.5)  # events after the opt-in (Kafka timestamps later than it)
    produce(producer, eng.events_topic, [page_view(vid)])
    wait_until(lambda: eng.counts([vid])[vid] == 1, 30, "a fresh profile after opt_in")
    producer.close()
