"""Where simulated traffic goes: a JSONL file, the HTTP collector, or Kafka directly."""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Iterable
from typing import Any, TextIO

from stream_app.settings import Settings


class Pacer:
    """Keeps an average of ``rate`` events per second (0 = as fast as possible)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0

    def tick(self, n: int) -> None:
        self.sent += n
        if self.rate > 0:
            ahead = self.sent / self.rate - (time.monotonic() - self.start)
            if ahead > 0:
                time.sleep(ahead)


def to_jsonl(events: Iterable[dict[str, Any]], out: TextIO, rate: float = 0) -> int:
    pacer = Pacer(rate)
    for event in events:
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
        pacer.tick(1)
    out.flush()
    return pacer.sent


def to_http(
    events: Iterable[dict[str, Any]],
    url: str,
    rate: float = 0,
    batch: int = 500,
    write_key: str | None = None,
) -> int:
    import httpx

    pacer = Pacer(rate)
    buf: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {write_key}"} if write_key else {}
    with httpx.Client(base_url=url, timeout=30.0, headers=headers) as client:

        def flush() -> None:
            for attempt in range(30):  # 503 while Kafka restarts, 429: retry; ids de-duplicate
                r = client.post("/v1/events", json={"events": buf})
                if r.status_code == 202:
                    break
                if r.status_code not in (429, 503):
                    sys.stderr.write(f"collector answered {r.status_code}: {r.text[:500]}\n")
                    break
                time.sleep(min(0.2 * (attempt + 1), 2.0))
            pacer.tick(len(buf))
            buf.clear()

        for event in events:
            buf.append(event)
            if len(buf) >= batch or (rate and len(buf) >= max(1, int(rate / 10))):
                flush()
        if buf:
            flush()
    return pacer.sent


def to_kafka(events: Iterable[dict[str, Any]], settings: Settings, rate: float = 0) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python on 3.11+
        from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
    )
    pacer = Pacer(rate)
    try:
        for event in events:
            producer.send(
                settings.topic_events,
                key=event["visitor_id"].encode(),
                value=json.dumps(event, separators=(",", ":")).encode(),
            )
            pacer.tick(1)
        producer.flush()
    finally:
        producer.close()
    return pacer.sent
