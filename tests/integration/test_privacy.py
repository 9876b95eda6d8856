"""Privacy at the edge and in the engine, with real processes, Kafka and Redis.

- Raw e-mails, phones and the client IP sent through the API (native and Segment, valid and
  refused) reach no log of the API or the worker, no Kafka record and no Redis key.
- Consent (README "Consent", an addition to INTERFACES): an ``opt_out`` forgets the visitor
  like ``DELETE`` (lookup 404, identity and audiences gone, for a merged user too); later
  events of that visitor are counted in ``persona_worker_events_opted_out_total`` and not
  profiled, while other visitors still are.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.conftest import WRITE_KEY, Engine, wait_until

pytestmark = pytest.mark.integration

CLIENT_IP = "198.51.100.77"


def now(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def page_view(visitor: str, path: str = "/pricing", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "page_view",
        "visitor_id": visitor,
        "ts": now(),
        "url": f"https://example.com{path}",
        "dwell_ms": 30_000,
        **extra,
    }


def collect(engine: Engine, *events: dict[str, Any]) -> httpx.Response:
    """POST as the browser tracker does: the write key in the query, text/plain JSON."""
    return engine.http.post(
        f"/v1/events?writeKey={WRITE_KEY}",
        content=json.dumps({"events": list(events)}),
        headers={"content-type": "text/plain;charset=UTF-8", "Authorization": ""},
    )


def worker_metric(engine: Engine, name: str) -> float:
    port = engine.env["PERSONA_WORKER_WEB_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return sum(float(v) for v in found)


def redis_dump(engine: Engine) -> str:
    """Every key and value under the engine's prefix, as one string to search."""
    out = []
    for key in engine.redis.scan_iter(match=f"{engine.prefix}*"):
        kind = engine.redis.type(key)
        if kind == "string":
            value: Any = engine.redis.get(key)
        elif kind == "hash":
            value = engine.redis.hgetall(key)
        elif kind == "set":
            value = sorted(engine.redis.smembers(key))
        elif kind == "zset":
            value = engine.redis.zrange(key, 0, -1)
        else:
            value = kind
        out.append(f"{key}={value}")
    return "\n".join(out)


def topic_dump(engine: Engine, topic: str) -> str:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=engine.env["PERSONA_KAFKA_BOOTSTRAP"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=2000,
    )
    try:
        return "\n".join(
            f"{r.key!r} {r.value.decode('utf-8', 'replace') if r.value else None}" for r in consumer
        )
    finally:
        consumer.close()


def test_raw_pii_and_the_client_ip_reach_no_log_topic_or_key(engine: Engine) -> None:
    tag = uuid.uuid4().hex[:8]
    email = f"Jane.Privacy.{tag}@Example.com"
    phone = f"+49 30 {tag[:4].translate(str.maketrans('abcdef', '123456'))} 7788"
    bad_email = f"broken@@{tag}.example"
    visitor, segment_visitor = f"pii-{tag}", f"pii-seg-{tag}"
    context = {"ip": CLIENT_IP, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120"}

    identify = {
        "event_id": uuid.uuid4().hex,
        "type": "identify",
        "visitor_id": visitor,
        "user_id": f"crm-{tag}",
        "ts": now(),
        "traits": {"email": email, "phone": phone, "job_title": "CTO"},
        "context": context,
    }
    assert collect(engine, page_view(visitor, context=context), identify).status_code == 202
    refused = {**identify, "event_id": uuid.uuid4().hex, "traits": {"email": bad_email}}
    r = collect(engine, refused)
    assert r.status_code == 400 and bad_email not in r.text  # the refusal does not echo it
    segment = {
        "messageId": f"ajs-{tag}",
        "anonymousId": segment_visitor,
        "userId": f"crm-seg-{tag}",
        "timestamp": now(),
        "traits": {"email": email.upper(), "phone": phone},
        "context": {"ip": CLIENT_IP, "traits": {"email": email}},
    }
    r = engine.http.post("/v1/identify", json=segment, headers={"Authorization": ""})
    assert r.status_code == 401  # no key in the headers, the query or the body
    r = engine.http.post("/v1/identify", json={**segment, "writeKey": WRITE_KEY})
    assert r.status_code == 202, r.text

    def hashed() -> bool:
        ids = [
            engine.redis.hgetall(f"{engine.prefix}identity:{v}")
            for v in (f"user:crm-{tag}", f"user:crm-seg-{tag}")
        ]
        return all(i.get("email_sha256") for i in ids)

    wait_until(hashed, 60, "both identities hashed into Redis")
    time.sleep(1)  # let the worker finish logging the batch

    raws = {
        "e-mail": email,
        "e-mail, normalised": email.lower(),
        "refused e-mail": bad_email,
        "phone": phone,
        "phone, digits": re.sub(r"[^0-9+]", "", phone),
        "client IP": CLIENT_IP,
    }
    places = {
        "API log": engine.log("api"),
        "worker log": engine.log("worker"),
        "events topic": topic_dump(engine, engine.events_topic),
        "dead letters": topic_dump(engine, engine.dlq_topic),
        "Redis": redis_dump(engine),
    }
    assert places["API log"] and places["worker log"]  # there were logs to search
    assert f"user:crm-{tag}" in places["Redis"] and visitor in places["events topic"]
    leaks = [
        f"{what} in the {where}"
        for where, text in places.items()
        for what, raw in raws.items()
        if raw.lower() in text.lower()
    ]
    assert not leaks, leaks


def test_opt_out_forgets_the_visitor_and_later_events_are_not_profiled(engine: Engine) -> None:
    tag = uuid.uuid4().hex[:8]
    anon, user_visitor, user, bystander = f"c-{tag}", f"c-u-{tag}", f"crm-c-{tag}", f"b-{tag}"
    events = [page_view(anon, p) for p in ("/pricing", "/docs", "/pricing")]
    events += [page_view(user_visitor, "/docs")]
    events += [
        {
            "event_id": uuid.uuid4().hex,
            "type": "identify",
            "visitor_id": user_visitor,
            "user_id": user,
            "ts": now(),
            "traits": {"email": f"optout-{tag}@example.com"},
        }
    ]
    assert collect(engine, *events).status_code == 202

    def profiled(ident: str, count: int) -> bool:
        r = engine.http.get(f"/v1/visitors/{ident}")
        return r.status_code == 200 and r.json().get("events") == count

    wait_until(lambda: profiled(anon, 3) and profiled(user, 2), 30, "both visitors profiled")
    assert engine.redis.hgetall(f"{engine.prefix}identity:user:{user}")

    opted_out_before = worker_metric(engine, "persona_worker_events_opted_out_total")
    consent = [
        {
            "event_id": uuid.uuid4().hex,
            "type": "consent",
            "visitor_id": v,
            "ts": now(),
            "status": "opt_out",
            "source": "banner" if v == anon else "gpc",
        }
        for v in (anon, user_visitor)
    ]
    assert collect(engine, *consent).status_code == 202

    def forgotten() -> bool:
        codes = [engine.http.get(f"/v1/visitors/{i}").status_code for i in (anon, user_visitor)]
        return codes == [404, 404]

    wait_until(forgotten, 30, "the opted-out visitors to be forgotten (lookup 404)")
    # Like DELETE: the merged user and its serving copies are gone as well. Its forget travels
    # on the control topic after the visitor's own, so it lands a moment later.
    wait_until(
        lambda: (
            engine.http.get(f"/v1/visitors/{user}").status_code == 404
            and not engine.redis.exists(f"{engine.prefix}identity:user:{user}")
        ),
        30,
        "the merged user to be forgotten too (lookup 404, no identity hash)",
    )
    members = [
        m
        for key in engine.redis.scan_iter(match=f"{engine.prefix}audience:*")
        for m in engine.redis.zrange(key, 0, -1)
    ]
    assert not {anon, user_visitor, f"user:{user}"} & set(members)

    # Later events: counted, not profiled. A bystander's events prove the worker is running.
    later = [page_view(anon, "/pricing", ts=now(1)), page_view(user_visitor, "/docs", ts=now(1))]
    later += [page_view(bystander, "/docs"), page_view(bystander, "/pricing")]
    assert collect(engine, *later).status_code == 202
    wait_until(lambda: profiled(bystander, 2), 30, "the bystander profiled")
    wait_until(
        lambda: (
            worker_metric(engine, "persona_worker_events_opted_out_total") >= opted_out_before + 2
        ),
        15,
        "persona_worker_events_opted_out_total to count the 2 later events",
    )
    time.sleep(1)
    assert [
        engine.http.get(f"/v1/visitors/{i}").status_code for i in (anon, user_visitor, user)
    ] == [
        404,
        404,
        404,
    ]
