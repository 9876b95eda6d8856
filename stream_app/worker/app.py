"""The faust application: topics, the visitor table, and the agent that runs the pipeline."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from stream_app.settings import Settings
from stream_app.store import VisitorStore, VisitorWrite
from stream_app.store.redis_store import RedisStore
from stream_app.worker.pipeline import Pipeline, RawMessage

log = logging.getLogger(__name__)

BATCH_MAX = 500
BATCH_WITHIN_S = 0.05


def faust_broker(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


def create_app(settings: Settings, *, store: VisitorStore | None = None) -> faust.App:
    app = faust.App(
        settings.consumer_group,
        broker=faust_broker(settings.kafka_bootstrap),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        web_enabled=True,
        web_host="127.0.0.1",
        web_port=settings.worker_web_port,
        web_bind="127.0.0.1",
        datadir=str(settings.worker_data_dir),
        autodiscover=False,
    )
    events = app.topic(settings.topic_events, key_type=bytes, value_type=bytes)
    dlq = app.topic(settings.topic_dlq, key_type=bytes, value_type=bytes)
    visitors = app.Table(
        "visitors",
        default=None,
        partitions=settings.topic_partitions,
        key_type=bytes,  # raw visitor_id bytes: the same partitioner hash as the events topic
        use_partitioner=True,  # changelog partition = partition of the visitor_id key
    )
    pipeline = Pipeline(dedup_window=settings.dedup_window)
    holder: dict[str, Any] = {"store": store}

    def get_store() -> VisitorStore:
        if holder["store"] is None:
            holder["store"] = RedisStore.from_url(
                settings.redis_url.get_secret_value(),
                prefix=settings.redis_prefix,
                ttl_s=settings.visitor_ttl_s,
                audience_threshold=settings.audience_threshold,
            )
        store_: VisitorStore = holder["store"]
        return store_

    @app.agent(events, name="process-events")
    async def process_events(stream: Any) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            messages = [
                RawMessage(
                    e.message.key,
                    e.message.value,
                    f"{e.message.topic}/{e.message.partition}@{e.message.offset}",
                )
                for e in batch
            ]
            result = pipeline.process(messages, lambda vid: visitors.get(vid.encode()))
            for vid, state in result.states.items():
                visitors[vid.encode()] = state
            await write_with_retry(get_store(), result.writes)
            for dead in result.dead_letters:
                log.warning("dead letter (%s) from %s: %s", dead.reason, dead.source, dead.detail)
                await dlq.send(key=dead.key, value=dead.to_json_bytes())
            for vid, payload in result.rekeyed:
                await events.send(key=vid.encode(), value=payload)

    app.persona_pipeline = pipeline  # type: ignore[attr-defined]
    app.persona_agent = process_events  # type: ignore[attr-defined]
    app.persona_table = visitors  # type: ignore[attr-defined]
    return app


async def write_with_retry(store: VisitorStore, writes: list[VisitorWrite]) -> None:
    """Redis down means the batch is not acknowledged: wait and retry, never drop."""
    delay = 0.1
    while True:
        try:
            await store.write(writes)
            return
        except Exception as exc:
            log.warning("Redis write failed (%r); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
