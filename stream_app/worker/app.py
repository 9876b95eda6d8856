"""The faust worker app: it wires the named components of the worker together.

persona.events + <group>.control ──▶ EventsConsumer (batch-native, aiokafka getmany)
     │  BatchProcessor: states in Redis (StateStore, compare-and-set), the pure Pipeline
     │  effects: persona.events.dlq, persona.assignments, <group>.control, re-keyed events
     └▶ <group>.training (1 partition) ─▶ train (faust agent) ─▶ persona.models
persona.models ──▶ ModelSync (every worker) ──▶ hot swap
faust keeps the lifecycle, the CLI, web + /metrics, the timers and the trainer agent.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
from typing import Any

import faust
import orjson
from redis.asyncio import Redis

from models.catalog import Catalog
from stream_app.geo import Locator, fill_location
from stream_app.metrics import WorkerMetrics
from stream_app.settings import Settings
from stream_app.store import VisitorStore
from stream_app.store.redis_store import RedisStore
from stream_app.store.state_store import StateStore
from stream_app.worker.batch import VISITOR_CODEC, BatchProcessor
from stream_app.worker.events_consumer import EventsConsumer, KafkaEmitter
from stream_app.worker.housekeeping import Housekeeping
from stream_app.worker.model_holder import ModelHolder
from stream_app.worker.model_sync import MODEL_KEY, ModelSync
from stream_app.worker.pipeline import Pipeline
from stream_app.worker.trainer import Trainer
from stream_app.worker.unlabelled import UnlabelledLearning

log = logging.getLogger(__name__)


def faust_broker(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


def faust_app_id(settings: Settings) -> str:
    """faust's own consumer group (the trainer agent); the events path uses the group
    PERSONA_CONSUMER_GROUP itself, with the range assignor (co-partitioning)."""
    return f"{settings.consumer_group}-faust"


def tune_gc() -> None:
    """The events path allocates many short-lived objects per event: collect the young
    generation every 50,000 allocations instead of 700 (≈8% of the pipeline's CPU, measured
    with bench/bench_pipeline.py), and leave what is loaded by now (modules, catalog,
    model) out of every later full collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(
    settings: Settings,
    *,
    store: VisitorStore | None = None,
    metrics: WorkerMetrics | None = None,
    state_store: StateStore | None = None,
) -> faust.App:
    metrics = metrics or WorkerMetrics()
    catalog = Catalog.load(settings.catalog_path)
    app = faust.App(
        faust_app_id(settings),
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
        web_enabled=True,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        datadir=str(settings.worker_data_dir),
        autodiscover=False,
    )
    training = app.topic(settings.topic_training, key_type=bytes, value_type=bytes, partitions=1)
    models = app.topic(settings.topic_models, key_type=bytes, value_type=bytes, partitions=1)
    holder = ModelHolder(catalog, settings.state_half_life_s)
    sync = ModelSync(settings, holder)
    trainer = Trainer(holder, settings.snapshot_every_labels, settings.snapshot_every_s)
    locator = Locator.from_settings(settings)  # events written straight to Kafka with an IP
    pipeline = Pipeline(
        holder,
        dedup_window=settings.dedup_window,
        audience_threshold=settings.audience_threshold,
        hysteresis=settings.audience_hysteresis,
        hash_pii=settings.hash_pii,
        enrich=lambda event: fill_location(event, locator),
        unlabelled=UnlabelledLearning(
            settings.unlabelled_weight,
            settings.unlabelled_min_labels,
            settings.unlabelled_max_per_s,
        ),
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

    states = state_store or StateStore(
        Redis.from_url(
            settings.redis_url.get_secret_value(),
            socket_timeout=10.0,
            socket_connect_timeout=2.0,
            health_check_interval=30,
        ),
        prefix=settings.redis_prefix,
        group=settings.consumer_group,
        events_topic=settings.topic_events,
        ttl_s=settings.visitor_ttl_s,
        audience_threshold=settings.audience_threshold,
        personas=catalog.persona_ids,
        codec=VISITOR_CODEC,
    )
    emitter = KafkaEmitter(settings.kafka_bootstrap)
    processor = BatchProcessor(
        pipeline,
        states,
        emitter,
        events_topic=settings.topic_events,
        control_topic=settings.topic_control,
        dlq_topic=settings.topic_dlq,
        assignments_topic=settings.topic_assignments,
        training_topic=settings.topic_training,
        ttl_s=settings.visitor_ttl_s,
    )
    consumer = EventsConsumer(
        processor,
        states,
        bootstrap=settings.kafka_bootstrap,
        group_id=settings.consumer_group,
        topics=(settings.topic_events, settings.topic_control),
        batch_max_events=settings.batch_max_events,
        batch_within_ms=settings.batch_within_ms,
        session_timeout_s=settings.kafka_session_timeout_s,
    )
    house = Housekeeping(
        settings,
        metrics,
        holder,
        states,
        get_store,
        consumer,
        catalog.persona_ids,
        f"{socket.gethostname()}:{os.getpid()}",
        drift=trainer.drift,
    )
    consumer.on_outcome = house.observe

    @app.task
    async def follow_models() -> None:
        await sync.run()

    @app.task
    async def process_events() -> None:
        """The batch-native events path (stream_app/worker/events_consumer.py)."""
        await sync.loaded.wait()
        tune_gc()
        await emitter.start()
        try:
            await consumer.run()
        finally:
            await emitter.stop()

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
                    examples.append(orjson.loads(event.value))
                except (ValueError, TypeError):
                    log.warning("skipping an undecodable training example")
            await trainer.learn_yielding(examples)
            learned.extend(events)
            if trainer.due():
                await publish_model()

    @app.timer(interval=1.0)
    async def publish_due_model() -> None:
        if trainer.due() and streams:
            await publish_model()

    app.timer(interval=30.0)(house.publish_discovery)
    app.timer(interval=2.0)(house.publish_live_stats)
    app.timer(interval=5.0)(house.measure_consumer_lag)
    app.timer(interval=10.0)(house.count_persona_mix)
    app.timer(interval=float(settings.state_sweep_interval_s))(house.expire_visitors)
    app.timer(interval=300.0)(house.sweep_audiences)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    app.persona = {  # type: ignore[attr-defined]
        "pipeline": pipeline,
        "holder": holder,
        "trainer": trainer,
        "consumer": consumer,
        "states": states,
        "housekeeping": house,
    }
    return app
