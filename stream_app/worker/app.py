"""The faust application: topics, the visitor table, the agents and the model sync.

persona.events + <group>.control ──▶ process-events ──▶ visitors table (changelog)
                                        │  Redis (one pipelined write per batch)
                                        │  persona.events.dlq, persona.assignments
                                        └▶ <group>.training (1 partition) ─▶ train ─▶ persona.models
persona.models ──▶ ModelSync (every worker) ──▶ hot swap
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from typing import Any

import faust
import orjson

from models.catalog import Catalog
from models.discovery import PersonaDiscovery
from stream_app.metrics import WorkerMetrics
from stream_app.settings import Settings
from stream_app.store import VisitorStore
from stream_app.store.redis_store import RedisStore
from stream_app.worker.expiry import expired_items
from stream_app.worker.lag import LagGauge, measure_lag
from stream_app.worker.live_stats import LiveStats
from stream_app.worker.model_holder import ModelHolder
from stream_app.worker.model_sync import MODEL_KEY, ModelSync
from stream_app.worker.persona_mix import count_top_personas
from stream_app.worker.pipeline import Pipeline, RawMessage
from stream_app.worker.recovery import SeekFirstTableManager
from stream_app.worker.trainer import Trainer

log = logging.getLogger(__name__)

DISCOVERY_SAMPLE = 10


def faust_broker(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc)


def create_app(
    settings: Settings, *, store: VisitorStore | None = None, metrics: WorkerMetrics | None = None
) -> faust.App:
    metrics = metrics or WorkerMetrics()
    catalog = Catalog.load(settings.catalog_path)
    app = faust.App(
        settings.consumer_group,
        broker=faust_broker(settings.kafka_bootstrap),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        producer_acks=-1,
        producer_linger_ms=5,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.kafka_session_timeout_s / 4),
        stream_buffer_maxsize=8192,
        web_enabled=True,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        datadir=str(settings.worker_data_dir),
        autodiscover=False,
        TableManager=SeekFirstTableManager,  # seek before resuming: no records lost on restart
    )
    events = app.topic(
        settings.topic_events, settings.topic_control, key_type=bytes, value_type=bytes
    )
    rekey = app.topic(settings.topic_events, key_type=bytes, value_type=bytes)
    control = app.topic(settings.topic_control, key_type=bytes, value_type=bytes)
    dlq = app.topic(settings.topic_dlq, key_type=bytes, value_type=bytes)
    assignments = app.topic(settings.topic_assignments, key_type=bytes, value_type=bytes)
    training = app.topic(settings.topic_training, key_type=bytes, value_type=bytes, partitions=1)
    models = app.topic(settings.topic_models, key_type=bytes, value_type=bytes, partitions=1)
    visitors = app.Table(
        "visitors",
        default=None,
        partitions=settings.topic_partitions,
        key_type=bytes,  # raw visitor_id bytes: the same partitioner hash as the events topic
        use_partitioner=True,
    )
    holder = ModelHolder(catalog, settings.state_half_life_s)
    sync = ModelSync(settings, holder)
    trainer = Trainer(holder, settings.snapshot_every_labels, settings.snapshot_every_s)
    pipeline = Pipeline(
        holder,
        dedup_window=settings.dedup_window,
        audience_threshold=settings.audience_threshold,
        hysteresis=settings.audience_hysteresis,
        hash_pii=settings.hash_pii,
    )
    stores: list[VisitorStore] = [store] if store else []

    def get_store() -> VisitorStore:
        if not stores:
            stores.append(
                RedisStore.from_url(
                    settings.redis_url.get_secret_value(),
                    prefix=settings.redis_prefix,
                    ttl_s=settings.visitor_ttl_s,
                    audience_threshold=settings.audience_threshold,
                )
            )
        return stores[0]

    @app.task
    async def follow_models() -> None:
        await sync.run()

    @app.agent(events, name="process-events")
    async def process_events(stream: Any) -> None:
        await sync.loaded.wait()
        batches = stream.take_events(
            settings.batch_max_events, within=settings.batch_within_ms / 1000
        )
        async for batch in batches:
            messages = [
                RawMessage(
                    e.message.key,
                    e.message.value,
                    f"{e.message.topic}/{e.message.partition}@{e.message.offset}",
                    control=e.message.topic == settings.topic_control,
                    timestamp=e.message.timestamp,
                )
                for e in batch
            ]
            from_control = sum(1 for msg in messages if msg.control)
            if from_control:
                metrics.consumed.labels(settings.topic_control).inc(from_control)
            if len(messages) > from_control:
                metrics.consumed.labels(settings.topic_events).inc(len(messages) - from_control)
            started = time.perf_counter()
            result = pipeline.process(messages, lambda vid: visitors.get(vid.encode()))
            metrics.batch_seconds.observe(time.perf_counter() - started)
            for error in result.emit_errors:
                log.error("could not build the record of %s", error)
            for vid, state in result.states.items():
                visitors[vid.encode()] = state
            writes = result.writes
            started = time.perf_counter()
            await retry("Redis write", lambda: get_store().write(writes))  # noqa: B023
            done = time.time()
            metrics.redis_write.observe(time.perf_counter() - started)
            latencies = [max(0.0, done - e.message.timestamp) for e in batch if e.message.timestamp]
            for latency in latencies:
                metrics.event_to_redis.observe(latency)
            record_batch(metrics, result, holder, settings)
            live.record(result, latencies)
            feed_discovery(result)
            for vid in result.forgotten:  # the table keeps a small marker (see pipeline)
                await retry("Redis delete", lambda vid=vid: get_store().delete(vid))
                await assignments.send(key=vid.encode(), value=None)
            for dead in result.dead_letters:
                log.warning("dead letter (%s) from %s: %s", dead.reason, dead.source, dead.detail)
                await dlq.send(key=dead.key, value=dead.to_json_bytes())
            for vid, payload in result.rekeyed:
                await rekey.send(key=vid.encode(), value=payload)
            for canonical, state in result.merges:
                doc = {"op": "merge", "visitor_id": canonical, "state": state}
                await control.send(key=canonical.encode(), value=dumps(doc))
            for canonical, event in result.forwards:
                doc = {"op": "event", "visitor_id": canonical, "event": event}
                await control.send(key=canonical.encode(), value=dumps(doc))
            for example in result.training:
                await training.send(key=b"trainer", value=dumps(example))
            for vid, doc in result.assignments:
                await assignments.send(key=vid.encode(), value=dumps(doc))

    # Training examples are acknowledged only once a snapshot containing them is durably on
    # the models topic: after a failover the new trainer starts from that snapshot and is
    # replayed exactly the examples it does not contain.
    learned: list[Any] = []  # events learned but not yet in a published snapshot
    streams: list[Any] = []

    async def publish_model() -> None:
        snapshot, covered = trainer.snapshot(), list(learned)
        learned.clear()
        sent = await models.send(key=MODEL_KEY, value=snapshot)
        await sent  # the broker has the snapshot (acks=all) before we acknowledge
        for event in covered:
            await streams[0].ack(event)

    @app.agent(training, name="train")
    async def train(stream: Any) -> None:
        streams[:] = [stream]
        await sync.loaded.wait()
        async for events in stream.noack_take(200, within=0.5):
            examples = []
            for event in events:
                try:
                    examples.append(json.loads(event.value))
                except ValueError:
                    log.warning("skipping an undecodable training example")
            trainer.learn(examples)
            learned.extend(events)
            if trainer.due():
                await publish_model()

    @app.timer(interval=1.0)
    async def publish_due_model() -> None:
        if trainer.due() and streams:
            await publish_model()

    worker_name = f"{socket.gethostname()}:{os.getpid()}"
    discovery = PersonaDiscovery(mapper=holder.mapper)
    sampled = [0]

    def feed_discovery(result: Any) -> None:
        """Every 10th visitor update feeds the online clustering (it costs ~100 µs each)."""
        for state in result.states.values():
            sampled[0] += 1
            if sampled[0] % DISCOVERY_SAMPLE or not state.get("model") or not state.get("personas"):
                continue
            try:
                discovery.learn_one(state["model"], personas=state["personas"])
            except Exception:
                log.debug("discovery skipped a state", exc_info=True)

    @app.timer(interval=30.0)
    async def publish_discovery() -> None:
        try:
            found = discovery.candidates()
            await get_store().put_discovery(worker_name, found, ttl_s=120)
        except Exception:
            log.warning("could not publish candidate personas", exc_info=True)

    live = LiveStats()

    @app.timer(interval=2.0)
    async def publish_live_stats() -> None:
        try:
            drift = metrics.set_drift(trainer.drift())
            await get_store().put_worker_stats(
                worker_name, {**live.snapshot(holder.version), **drift}, ttl_s=15
            )
        except Exception:
            log.debug("could not publish live stats", exc_info=True)

    lag_gauge = LagGauge(metrics.consumer_lag)

    @app.timer(interval=5.0)
    async def measure_consumer_lag() -> None:
        try:
            lag = await measure_lag(app.consumer, (settings.topic_events, settings.topic_control))
        except Exception:
            log.debug("could not measure consumer lag", exc_info=True)
            return
        lag_gauge.update(lag)
        live.lag_messages = sum(lag.values())

    def held_states() -> list[tuple[bytes, Any]]:
        """A snapshot of the (key, state) pairs this worker holds: the memory store's dict
        (active partitions only). Taken on the loop; timers read it in a thread, which is
        safe because states are replaced, never resized, by the agent."""
        store = visitors.data
        return list(getattr(store, "data", store).items())

    @app.timer(interval=10.0)
    async def count_persona_mix() -> None:
        states = [state for _, state in held_states()]
        counts = await asyncio.to_thread(count_top_personas, states, catalog.persona_ids)
        for persona, n in counts.items():
            metrics.visitors.labels(persona).set(n)
        live.visitors = counts

    @app.timer(interval=float(settings.state_sweep_interval_s))
    async def expire_visitors() -> None:
        """Drop states idle for PERSONA_VISITOR_TTL_S (their Redis record expired too)."""
        expired = await asyncio.to_thread(
            expired_items, held_states(), time.time(), settings.visitor_ttl_s
        )
        removed = 0
        for i, (key, state) in enumerate(expired):
            if visitors.get(key) is state:  # unchanged since the snapshot
                del visitors[key]  # a tombstone on the changelog
                removed += 1
            if i % 500 == 499:
                await asyncio.sleep(0)
        if removed:
            metrics.visitors_expired.inc(removed)
            log.info("dropped %d visitor states idle for %ds", removed, settings.visitor_ttl_s)

    @app.timer(interval=300.0)
    async def sweep_audiences() -> None:
        """Audience members whose ps:visitor record expired (TTL) leave the audience."""
        try:
            removed = await get_store().sweep_audiences(catalog.persona_ids)
            if removed:
                log.info("swept %d expired visitors from audiences", removed)
        except Exception:
            log.warning("audience sweep failed; next try in 5 minutes", exc_info=True)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    app.persona = {  # type: ignore[attr-defined]
        "pipeline": pipeline,
        "holder": holder,
        "trainer": trainer,
        "table": visitors,
        "agent": process_events,
    }
    return app


def record_batch(
    metrics: WorkerMetrics, result: Any, holder: ModelHolder, settings: Settings
) -> None:
    produced = {
        settings.topic_dlq: len(result.dead_letters),
        settings.topic_events: len(result.rekeyed),
        settings.topic_control: len(result.merges) + len(result.forwards),
        settings.topic_training: len(result.training),
        settings.topic_assignments: len(result.assignments) + len(result.forgotten),
    }
    for topic, n in produced.items():
        if n:
            metrics.produced.labels(topic).inc(n)
    for kind, n in result.by_type.items():
        metrics.events.labels(kind).inc(n)
    metrics.duplicates.inc(result.duplicates)
    if result.forgotten_discarded:
        metrics.forgotten_discarded.inc(result.forgotten_discarded)
    for dead in result.dead_letters:
        metrics.dead_letters.labels(dead.reason).inc()
    for w in result.writes:
        metrics.top_persona.labels(w.record["top"]["persona"]).inc()
    metrics.model_version.set(holder.version)
    summary = holder.mapper.metrics()
    if summary.get("log_loss") is not None:
        metrics.model_log_loss.set(summary["log_loss"])
        metrics.model_accuracy.set(summary["accuracy"])


async def retry(what: str, action: Any) -> None:
    """Redis down means the batch is not acknowledged: wait and retry, never drop."""
    delay = 0.1
    while True:
        try:
            await action()
            return
        except Exception as exc:
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
