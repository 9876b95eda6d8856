"""Idle visitors expire (PERSONA_VISITOR_TTL_S after their last activity): state, record
and audiences go together, so the next event starts a fresh state; an active visitor
keeps its state."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Engine, produce, wait_until

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture
def expiring_engine(kafka_bootstrap: str, redis_url: str) -> Iterator[Engine]:
    eng = Engine(
        kafka_bootstrap,
        redis_url,
        uuid.uuid4().hex[:8],
        PERSONA_VISITOR_TTL_S="60",
        PERSONA_STATE_SWEEP_INTERVAL_S="1",
    )
    try:
        yield eng
    finally:
        eng.close()


def page_view(visitor: str, ts: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "page_view",
        "visitor_id": visitor,
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "url": "https://acme.example/docs/api",
    }


def expired_total(eng: Engine) -> float:
    port = eng.env["PERSONA_WORKER_WEB_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("persona_worker_visitors_expired_total "):
            return float(line.split()[-1])
    return 0.0


def test_idle_visitor_state_is_dropped_and_active_one_kept(
    expiring_engine: Engine, kafka_bootstrap: str
) -> None:
    from kafka import KafkaProducer

    eng = expiring_engine
    idle, active = f"idle-{eng.tag}", f"active-{eng.tag}"
    now = datetime.now(UTC)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")

    def send(*events: dict[str, Any]) -> None:
        produce(producer, eng.events_topic, list(events))

    eng.start("worker")
    eng.wait_worker()
    # The idle visitor's last event happened 40 s ago: 20 s from now it is past the 60 s TTL.
    before = now - timedelta(seconds=45)
    send(page_view(idle, before), page_view(idle, before + timedelta(seconds=5)))
    # The active visitor's clock runs 10 minutes ahead (allowed up to 24 h), so a slow
    # machine cannot let it reach the 60 s TTL during the test.
    ahead = now + timedelta(minutes=10)
    send(page_view(active, ahead), page_view(active, ahead + timedelta(seconds=1)))
    wait_until(lambda: eng.counts([idle, active]) == {idle: 2, active: 2}, 60, "both visitors")
    wait_until(lambda: expired_total(eng) >= 1, 60, "the idle visitor to expire")
    time.sleep(2.0)  # more sweeps: the active visitor must survive them
    assert expired_total(eng) == 1
    assert eng.records([idle])[idle] is None, "the record expires with the state"

    send(page_view(idle, datetime.now(UTC)), page_view(active, ahead + timedelta(seconds=2)))
    # idle starts afresh (1 event); active continues (3 events).
    wait_until(
        lambda: eng.counts([idle, active]) == {idle: 1, active: 3},
        60,
        "a fresh state for the idle visitor and a continued one for the active visitor",
    )
    producer.close()
