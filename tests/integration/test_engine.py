"""Issue 4 end to end: simulated traffic, labels and model versions, DLQ, deletion."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from models.catalog import Catalog
from models.simulator import Simulator
from stream_app.settings import DEFAULT_CATALOG
from tests.integration.conftest import Engine, wait_until


def post_all(engine: Engine, events: Iterable[dict[str, Any]], batch: int = 500) -> int:
    buf: list[dict[str, Any]] = []
    sent = 0

    def flush() -> None:
        nonlocal sent
        r = engine.http.post("/v1/events", json={"events": buf})
        assert r.status_code == 202, r.text
        assert r.json()["rejected"] == []
        sent += len(buf)
        buf.clear()

    for e in events:
        buf.append(e)
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    return sent


def lookup(engine: Engine, vid: str) -> dict[str, Any] | None:
    r = engine.http.get(f"/v1/visitors/{vid}")
    return r.json() if r.status_code == 200 else None


def wait_counts(engine: Engine, expected: dict[str, int], timeout: float = 120.0) -> None:
    """Wait until every visitor (or the user it was merged into) has its event count."""

    def mismatches() -> dict[str, tuple[int, int]]:
        got = engine.counts(list(expected))
        return {v: (got[v], n) for v, n in expected.items() if got[v] != n}

    try:
        wait_until(
            lambda: not mismatches(), timeout, f"{len(expected)} visitors' counts", every=0.5
        )
    except AssertionError:
        wrong = mismatches()
        sample = list(wrong.items())[:5]
        raise AssertionError(f"{len(wrong)} visitors with (got, expected): {sample}") from None


def copy_event(event: dict[str, Any], prefix: str, vid: str) -> dict[str, Any]:
    """The same behaviour as a new visitor (and a new user, if it identifies)."""
    out = {**event, "visitor_id": vid, "event_id": f"{prefix}-{event['event_id']}"}
    if "user_id" in out:
        out["user_id"] = f"{prefix}-{out['user_id']}"
    return out


@pytest.fixture(scope="module")
def world() -> Simulator:
    return Simulator(
        Catalog.load(DEFAULT_CATALOG), seed=42, labelled_fraction=0.0, events_per_visitor=10
    )


def test_simulated_traffic_gets_calibrated_personas(engine: Engine, world: Simulator) -> None:
    visitors = list(world.visitors(300))
    post_all(engine, (e for v in visitors for e in v.events))
    wait_counts(engine, {v.visitor_id: len(v.events) for v in visitors})
    catalog = Catalog.load(DEFAULT_CATALOG)
    hits = total = 0
    for v in visitors:
        doc = lookup(engine, v.visitor_id)
        assert doc is not None
        assert set(doc["personas"]) == set(catalog.persona_ids)
        assert sum(doc["personas"].values()) == pytest.approx(1.0, abs=1e-4)
        assert doc["top"]["persona"] == max(doc["personas"], key=doc["personas"].get)
        assert doc["phase"] in ("awareness", "consideration", "decision", "purchase", "retention")
        if sum(e["type"] == "page_view" for e in v.events) >= 5:
            total += 1
            hits += doc["top"]["persona"] == v.persona
    assert total >= 50
    # Rules only (no labels yet): the simulator's world is partly hidden from the rules.
    assert hits / total >= 0.6, f"top persona right for {hits}/{total}"


def test_labels_raise_model_version_and_improve_accuracy(engine: Engine, world: Simulator) -> None:
    held_out = list(world.visitors(200))

    def accuracy(prefix: str) -> float:
        # Fresh copies of the held-out visitors, scored by the current model.
        copies = []
        for v in held_out:
            vid = f"{prefix}-{v.visitor_id}"
            copies.append(
                (
                    vid,
                    v.persona,
                    [copy_event(e, prefix, vid) for e in v.events],
                )
            )
        post_all(engine, (e for _, _, evs in copies for e in evs))
        wait_counts(engine, {vid: len(evs) for vid, _, evs in copies})
        hits = 0
        for vid, persona, _ in copies:
            doc = lookup(engine, vid)
            assert doc is not None
            hits += doc["top"]["persona"] == persona
        return hits / len(copies)

    acc_before = accuracy("before")
    version_before = lookup(engine, f"before-{held_out[0].visitor_id}")["model_version"]  # type: ignore[index]

    world.labelled_fraction = 1.0
    labelled = list(world.visitors(1500))
    world.labelled_fraction = 0.0
    post_all(engine, (e for v in labelled for e in v.events))

    versions: list[int] = []

    def newer_model() -> bool:
        probe = f"probe-{uuid.uuid4().hex}"
        post_all(
            engine,
            [
                {
                    "event_id": probe,
                    "type": "page_view",
                    "visitor_id": probe,
                    "ts": datetime.now(UTC).isoformat(),
                    "url": "https://x.example/docs",
                }
            ],
        )
        doc = wait_until(lambda: lookup(engine, probe), 30, "the probe visitor")
        versions.append(doc["model_version"])
        # Newer than before, and stable: the trainer has caught up with the labels.
        return len(versions) >= 3 and versions[-1] == versions[-3] > version_before

    wait_until(
        newer_model, 180, "the scoring workers to hot-swap a model trained on the labels", every=2
    )
    acc_after = accuracy("after")
    assert acc_after >= acc_before + 0.05, (acc_before, acc_after)

    # The unlabelled "after" visitors (10 events each) taught the model too: their soft
    # examples went through the training topic into a published model the worker scores with.
    port = engine.env["PERSONA_WORKER_WEB_PORT"]

    def unlabelled_weight() -> float | None:
        newer_model()  # one more event, so the worker refreshes its model gauges
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        weight = sample(text, "persona_model_unlabelled_weight")
        return weight if weight > 0 else None

    weight = wait_until(unlabelled_weight, 90, "a model with unlabelled visitors' weight", every=2)
    assert weight <= len(held_out) * 1.01, weight  # each visitor counts at most once (weight 1)


def test_poison_message_goes_to_dlq_and_stream_continues(
    engine: Engine, kafka_bootstrap: str
) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    vid = f"v-{uuid.uuid4().hex}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(engine.events_topic, key=vid.encode(), value=b"\x00not json at all")
    bad_label = {
        "event_id": uuid.uuid4().hex,
        "type": "label",
        "visitor_id": vid,
        "ts": datetime.now(UTC).isoformat(),
        "persona": "martian",
        "source": "survey",
    }
    producer.send(engine.events_topic, key=vid.encode(), value=json.dumps(bad_label).encode())
    good = {
        "event_id": uuid.uuid4().hex,
        "type": "touchpoint",
        "visitor_id": vid,
        "ts": datetime.now(UTC).isoformat(),
        "channel": "chat",
        "action": "reply",
    }
    producer.send(engine.events_topic, key=vid.encode(), value=json.dumps(good).encode())
    producer.flush()
    producer.close()

    wait_until(lambda: (lookup(engine, vid) or {}).get("events") == 1, 30, "the good event")
    consumer = KafkaConsumer(
        engine.dlq_topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    letters: list[dict[str, Any]] = []

    def both() -> bool:
        letters.extend(json.loads(m.value) for m in consumer if m.key == vid.encode())
        return len(letters) >= 2

    try:
        wait_until(both, 30, "two dead letters")
    finally:
        consumer.close()
    reasons = {d["reason"]: d for d in letters}
    assert set(reasons) == {"undecodable", "unknown_persona"}
    assert "martian" in reasons["unknown_persona"]["detail"]
    assert reasons["undecodable"]["payload_encoding"] in ("base64", "utf-8")
    assert json.loads(reasons["unknown_persona"]["payload"])["persona"] == "martian"


def test_delete_forgets_the_visitor_everywhere(engine: Engine, world: Simulator) -> None:
    v = world.visitor()
    vid = v.visitor_id
    events = [{**e, "user_id": "del-user-1"} if e["type"] != "identify" else e for e in v.events]
    events.append(
        {
            "event_id": uuid.uuid4().hex,
            "type": "identify",
            "visitor_id": vid,
            "user_id": "del-user-1",
            "ts": datetime.now(UTC).isoformat(),
            "traits": {"email": "gone@example.com"},
        }
    )
    post_all(engine, events)
    wait_counts(engine, {vid: len(events)})
    r = engine.http.delete(f"/v1/visitors/{vid}")
    assert r.status_code == 200 and r.json()["deleted"] is True

    def gone() -> bool:
        keys = list(engine.redis.scan_iter(match=f"{engine.prefix}*"))
        mentions = [k for k in keys if vid in k or "del-user-1" in k]
        members = [k for k in keys if ":audience:" in k and engine.redis.zscore(k, vid) is not None]
        return not mentions and not members

    wait_until(gone, 30, "no Redis key to mention the visitor")
    time.sleep(2)  # the worker's forget must not be undone by a late write
    assert gone()
    assert engine.http.get(f"/v1/visitors/{vid}").status_code == 404
    assert engine.http.get("/v1/visitors/del-user-1").status_code == 404
    for persona in Catalog.load(DEFAULT_CATALOG).persona_ids:
        export = engine.http.get(
            f"/v1/audiences/{persona}", params={"format": "json", "min_probability": 0}
        )
        assert vid not in export.text


def test_event_in_flight_during_delete_does_not_bring_the_visitor_back(
    engine: Engine, kafka_bootstrap: str
) -> None:
    """An event sent just before a DELETE but consumed after it (events and forgets travel
    on different topics) is dropped; an event sent after the DELETE starts afresh."""
    from kafka import KafkaProducer

    vid = f"v-{uuid.uuid4().hex}"

    def page(event_id: str) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        return {"event_id": event_id, "type": "page_view", "visitor_id": vid, "ts": now,
                "url": "https://acme.example/pricing"}  # fmt: skip

    post_all(engine, [page("before-1"), page("before-2")])
    wait_until(lambda: (lookup(engine, vid) or {}).get("events") == 2, 30, "the visitor")
    sent_before_delete_ms = int(time.time() * 1000)
    time.sleep(0.05)
    assert engine.http.delete(f"/v1/visitors/{vid}").status_code == 200
    wait_until(lambda: lookup(engine, vid) is None, 30, "the visitor to be forgotten")
    time.sleep(1.0)  # the worker has handled the forget

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    in_flight = json.dumps(page("in-flight")).encode()
    producer.send(
        engine.events_topic, key=vid.encode(), value=in_flight, timestamp_ms=sent_before_delete_ms
    )
    producer.flush()
    producer.close()
    port = engine.env["PERSONA_WORKER_WEB_PORT"]

    def dropped() -> bool:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return sample(text, "persona_worker_events_forgotten_total") >= 1

    wait_until(dropped, 30, "the worker to drop the in-flight event", every=0.5)
    time.sleep(0.5)  # its batch's Redis write, if there were one, is done
    assert lookup(engine, vid) is None, "an event sent before the DELETE resurrected the visitor"

    post_all(engine, [page("after")])
    fresh = wait_until(lambda: lookup(engine, vid), 30, "the visitor's new life")
    assert fresh["events"] == 1


def test_personas_and_audience_export(engine: Engine) -> None:
    r = engine.http.get("/v1/personas")
    assert r.status_code == 200
    body = r.json()
    assert len(body["personas"]) == 5
    assert sum(p["audience_size"] for p in body["personas"]) > 0
    with_kpi = [
        p for p in body["personas"] if p["kpi"]["nps_responses"] or p["kpi"]["csat_responses"]
    ]
    assert with_kpi, "simulated feedback should have produced KPIs"
    persona = max(body["personas"], key=lambda p: p["audience_size"])["id"]
    csv_export = engine.http.get(f"/v1/audiences/{persona}")
    assert csv_export.status_code == 200
    lines = csv_export.text.strip().splitlines()
    assert lines[0] == "email,phone,external_id,probability"
    assert len(lines) > 1
    assert engine.http.get("/v1/audiences/martian").status_code == 404


def test_identify_merges_two_anonymous_visitors(engine: Engine) -> None:
    user = f"crm-{uuid.uuid4().hex[:10]}"
    laptop, phone = f"v-laptop-{uuid.uuid4().hex}", f"v-phone-{uuid.uuid4().hex}"
    now = datetime.now(UTC).isoformat()

    def ev(vid: str, **fields: Any) -> dict[str, Any]:
        return {"event_id": uuid.uuid4().hex, "visitor_id": vid, "ts": now, **fields}

    pages = [ev(laptop, type="page_view", url="https://x.example/docs/api") for _ in range(3)]
    pages += [ev(phone, type="page_view", url="https://x.example/pricing") for _ in range(2)]
    feedback = ev(phone, type="feedback", kind="nps", score=10)
    post_all(engine, [*pages, feedback])
    wait_counts(engine, {laptop: 3, phone: 3})
    identifies = [
        ev(laptop, type="identify", user_id=user, traits={"email": "pat@example.com"}),
        ev(phone, type="identify", user_id=user, traits={}),
    ]
    post_all(engine, identifies)

    def merged() -> dict[str, Any] | None:
        doc = lookup(engine, user)
        return doc if doc and doc["events"] == 8 else None

    doc = wait_until(merged, 60, "the user's merged state (3 + 3 + 2 identifies)")
    assert doc["user_id"] == user
    assert sorted(doc["merged_visitor_ids"]) == sorted([laptop, phone])
    assert doc["feedback"]["nps"] == 10
    assert sum(doc["personas"].values()) == pytest.approx(1.0, abs=1e-4)
    # Both anonymous ids now resolve to the merged state, and later events join it.
    assert lookup(engine, laptop) == lookup(engine, phone)
    post_all(engine, [ev(phone, type="page_view", url="https://x.example/pricing")])
    wait_until(lambda: (lookup(engine, user) or {}).get("events") == 9, 30, "a later event to join")

    # Forgetting the user forgets the merged visitors too: a new event of the laptop starts
    # a fresh anonymous visitor instead of joining (re-creating) the forgotten user.
    assert engine.http.delete(f"/v1/visitors/{user}").status_code == 200
    wait_until(lambda: lookup(engine, user) is None, 30, "the user to be forgotten")
    time.sleep(1.0)
    post_all(engine, [ev(laptop, type="page_view", url="https://x.example/blog")])
    fresh = wait_until(lambda: lookup(engine, laptop), 30, "the laptop as a new visitor")
    assert fresh["visitor_id"] == laptop and fresh["events"] == 1
    assert lookup(engine, user) is None


def test_worker_exposes_prometheus_metrics(engine: Engine) -> None:
    port = engine.env["PERSONA_WORKER_WEB_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    processed = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('persona_worker_events_processed_total{type="page_view"}')
    ]
    assert processed and processed[0] > 0
    assert "persona_worker_event_to_redis_seconds_bucket" in text
    assert 'persona_worker_dead_letters_total{reason="unknown_persona"}' in text
    events, dlq = engine.env["PERSONA_TOPIC_EVENTS"], engine.env["PERSONA_TOPIC_DLQ"]
    assert sample(text, f'persona_worker_messages_consumed_total{{topic="{events}"}}') > 0
    assert sample(text, f'persona_worker_messages_produced_total{{topic="{dlq}"}}') > 0

    def lag_of_every_partition() -> dict[str, float] | None:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        lags = {
            line.split("{", 1)[1].split("}", 1)[0]: float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("persona_worker_consumer_lag_messages{")
            and f'topic="{events}"' in line
        }
        return lags if len(lags) == 2 and all(v == 0 for v in lags.values()) else None

    # Measured every 5 s; both partitions are this worker's and it has caught up.
    wait_until(lag_of_every_partition, 20, "a zero consumer lag on both partitions", every=1)

    def mix_matches_redis() -> tuple[float, int] | None:
        """Persona mix: one visitor per Redis record (merged and deleted visitors have none)."""
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        held = sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("persona_worker_visitors{")
        )
        records = sum(1 for _ in engine.redis.scan_iter(match=f"{engine.prefix}visitor:*"))
        return (held, records) if held == records and held > 0 else None

    wait_until(mix_matches_redis, 30, "persona_worker_visitors to count the visitors", every=1)


def sample(text: str, prefix: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
    assert values, f"no sample {prefix} in the worker's /metrics"
    return values[0]


def test_live_stats_reach_the_dashboard_endpoint(engine: Engine) -> None:
    def reported() -> dict[str, Any] | None:
        s = engine.http.get("/v1/stats").json()
        return s if s["totals"]["workers"] >= 1 and s["totals"]["events_total"] > 0 else None

    stats = wait_until(reported, 15, "the worker's live stats in /v1/stats", every=0.5)
    assert set(stats["persona_mix"]) == {p["id"] for p in stats["personas"]}

    def visitor_mix() -> dict[str, Any] | None:
        s = engine.http.get("/v1/stats").json()
        return s if s["persona_mix_basis"] == "visitors" else None

    # The worker counts its visitors every 10 s and publishes its stats every 2 s.
    mix = wait_until(visitor_mix, 25, "a persona mix counted over visitors", every=0.5)
    assert sum(mix["persona_mix"].values()) == pytest.approx(1.0)
    assert engine.http.get("/dashboard").status_code == 200
