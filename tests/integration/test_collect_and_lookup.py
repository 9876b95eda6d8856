"""Issue 2 end to end: HTTP collector -> Kafka -> faust worker -> Redis -> lookup API."""

from __future__ import annotations

import base64
import json
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

from tests.integration.conftest import WRITE_KEY, Engine, wait_until

warnings.filterwarnings("ignore", category=DeprecationWarning)


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def page_view(visitor_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"e-{uuid.uuid4().hex}",
        "type": "page_view",
        "visitor_id": visitor_id,
        "ts": now(),
        "url": "https://example.com/pricing?utm_source=google&utm_medium=cpc",
        "dwell_ms": 12000,
        **extra,
    }


def read_topic(bootstrap: str, topic: str, min_count: int, timeout_s: float = 20.0) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    records: list[Any] = []
    try:
        wait_until(
            lambda: records.extend(consumer) or len(records) >= min_count,
            timeout_s,
            f"{min_count} records in {topic}",
        )
    finally:
        consumer.close()
    return records


def events_count(engine: Engine, visitor_id: str, expected: int) -> dict[str, Any]:
    """The visitor's record (or the user's it was merged into) once it counts ``expected``."""

    def check() -> dict[str, Any] | None:
        doc = engine.records([visitor_id])[visitor_id]
        return doc if doc and doc["events"] == expected else None

    return wait_until(check, 30.0, f"{visitor_id} to have {expected} events in Redis")  # type: ignore[no-any-return]


def test_event_flows_from_http_to_kafka_worker_redis_and_lookup(
    engine: Engine, kafka_bootstrap: str
) -> None:
    vid = f"v-{uuid.uuid4().hex}"
    event = page_view(vid)
    resp = engine.http.post("/v1/events", json=event)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 1, "rejected": []}

    records = [
        r for r in read_topic(kafka_bootstrap, engine.events_topic, 1) if r.key == vid.encode()
    ]
    assert len(records) == 1
    assert json.loads(records[0].value)["event_id"] == event["event_id"]

    doc = events_count(engine, vid, 1)
    assert doc["visitor_id"] == vid
    lookup = engine.http.get(f"/v1/visitors/{vid}")
    assert lookup.status_code == 200
    assert lookup.json()["events"] == 1
    assert engine.http.get(f"/v1/visitors/nobody-{uuid.uuid4().hex}").status_code == 404


def test_segment_batch_as_analytics_libraries_send_it(engine: Engine) -> None:
    anon = f"anon-{uuid.uuid4().hex}"
    ts = now()
    body = {
        "batch": [
            {
                "type": "page",
                "messageId": f"ajs-{uuid.uuid4().hex}",
                "anonymousId": anon,
                "timestamp": ts,
                "name": "Pricing",
                "properties": {"url": "https://example.com/pricing", "title": "Pricing"},
                "context": {
                    "library": {"name": "analytics.js", "version": "next-1.70.0"},
                    "page": {
                        "url": "https://example.com/pricing?utm_campaign=q4",
                        "referrer": "https://www.google.com/",
                        "title": "Pricing",
                    },
                    "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
                    "locale": "en-US",
                },
                "integrations": {},
                "_metadata": {"bundled": ["Segment.io"], "unbundled": []},
            },
            {
                "type": "track",
                "event": "Webinar Attended",
                "messageId": f"ajs-{uuid.uuid4().hex}",
                "anonymousId": anon,
                "timestamp": ts,
                "properties": {"channel": "webinar", "action": "attend", "campaign": "q4-demo"},
                "context": {"library": {"name": "analytics.js", "version": "next-1.70.0"}},
            },
            {
                "type": "identify",
                "messageId": f"ajs-{uuid.uuid4().hex}",
                "anonymousId": anon,
                "userId": f"u-{uuid.uuid4().hex}",
                "timestamp": ts,
                "traits": {"email": "Jane.Doe@Example.com", "job_title": "CTO"},
                "context": {"library": {"name": "analytics.js", "version": "next-1.70.0"}},
            },
        ],
        "sentAt": ts,
    }
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()  # analytics-node's Basic auth
    resp = engine.http.post("/v1/batch", json=body, headers={"Authorization": f"Basic {auth}"})
    assert resp.status_code in (200, 202), resp.text
    assert resp.json()["accepted"] == 3
    doc = events_count(engine, anon, 3)
    assert doc["user_id"] == body["batch"][2]["userId"]
    assert "Jane" not in json.dumps(doc)


def test_partial_batch_accepts_exactly_the_valid_events(engine: Engine) -> None:
    vid = f"v-{uuid.uuid4().hex}"
    good = [page_view(vid), page_view(vid)]
    bad_dwell = page_view(vid, dwell_ms=-5)
    bad_url = page_view(vid, url="ftp://example.com/file")
    resp = engine.http.post("/v1/events", json={"events": [good[0], bad_dwell, good[1], bad_url]})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 3]
    assert body["rejected"][0]["event_id"] == bad_dwell["event_id"]
    assert any(e["field"] == "dwell_ms" for e in body["rejected"][0]["errors"])
    assert any(e["field"] == "url" for e in body["rejected"][1]["errors"])
    events_count(engine, vid, 2)


def test_same_event_id_twice_is_counted_once(engine: Engine) -> None:
    vid = f"v-{uuid.uuid4().hex}"
    event = page_view(vid)
    for _ in range(2):
        assert engine.http.post("/v1/events", json=event).status_code == 202
    marker = page_view(vid)  # processed after both copies: once it counts, the duplicate is done
    assert engine.http.post("/v1/events", json=marker).status_code == 202
    doc = events_count(engine, vid, 2)
    assert doc["events"] == 2


def test_bad_bodies_get_clear_4xx(engine: Engine) -> None:
    http = engine.http
    r = http.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = http.post("/v1/events", content=b"<xml/>", headers={"content-type": "application/xml"})
    assert r.status_code == 415
    huge = b'{"events": [' + b'"x",' * 200_000 + b'"x"]}'
    r = http.post("/v1/events", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = http.post("/v1/events", json=[1, 2, 3])
    assert r.status_code == 400
