"""The worker's periodic and per-batch bookkeeping, apart from the events path itself.

:class:`Housekeeping` turns each batch's outcome into metrics, live stats and discovery
samples (:meth:`observe`), and holds what the faust timers run: live stats, candidate
personas, consumer lag, the persona mix, visitor expiry and the audience sweep. Each
method does one job and can be called alone (the app only schedules them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from models.discovery import PersonaDiscovery
from stream_app.metrics import WorkerMetrics
from stream_app.settings import Settings
from stream_app.store import VisitorStore
from stream_app.store.state_store import StateStore
from stream_app.worker.batch import Outcome
from stream_app.worker.events_consumer import EventsConsumer
from stream_app.worker.lag import LagGauge
from stream_app.worker.live_stats import LiveStats
from stream_app.worker.model_holder import ModelHolder

log = logging.getLogger(__name__)

DISCOVERY_SAMPLE = 10
# At most this many discovery samples per second: a sample costs 100-200 µs, so 1 in 10
# visitor updates took 7-15% of the worker's CPU at full speed; 100 a second is 6,000 a
# minute for candidates published every 30 s.
DISCOVERY_MAX_PER_S = 100


class Housekeeping:
    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        holder: ModelHolder,
        states: StateStore,
        store: Callable[[], VisitorStore],
        consumer: EventsConsumer,
        personas: list[str],
        worker_name: str,
        drift: Callable[[], dict[str, dict[str, bool]]] = dict,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.holder = holder
        self.states = states
        self.store = store
        self.consumer = consumer
        self.personas = personas
        self.worker_name = worker_name
        self.drift = drift  # the trainer's ADWIN flags (empty on workers that do not train)
        self.live = LiveStats()
        self.discovery = PersonaDiscovery(mapper=holder.mapper)
        self.lag_gauge = LagGauge(metrics.consumer_lag)
        self.sampled = 0
        self._sample_second = 0  # the second (monotonic) the samples below were taken in
        self._sampled_this_second = 0

    # -- per batch -------------------------------------------------------------------------
    def observe(self, outcome: Outcome) -> None:
        record_batch(self.metrics, outcome, self.holder, self.settings)
        self.live.record(outcome.result, outcome.latencies)
        self.feed_discovery(outcome.result)

    def feed_discovery(self, result: Any) -> None:
        """Every 10th visitor update feeds the online clustering (it costs 100-200 µs
        each), at most DISCOVERY_MAX_PER_S a second."""
        second = int(time.monotonic())
        if second != self._sample_second:
            self._sample_second, self._sampled_this_second = second, 0
        for state in result.states.values():
            self.sampled += 1
            if self.sampled % DISCOVERY_SAMPLE or not state.model or not state.personas:
                continue
            if self._sampled_this_second >= DISCOVERY_MAX_PER_S:
                return
            self._sampled_this_second += 1
            try:
                self.discovery.mapper = self.holder.mapper  # the model in use (hot swaps)
                self.discovery.learn_one(state.model, personas=state.personas)
            except Exception:
                log.debug("discovery skipped a state", exc_info=True)

    # -- timers ----------------------------------------------------------------------------
    async def publish_discovery(self) -> None:
        try:
            found = self.discovery.candidates()
            await self.store().put_discovery(self.worker_name, found, ttl_s=120)
        except Exception:
            log.warning("could not publish candidate personas", exc_info=True)

    async def publish_live_stats(self) -> None:
        try:
            drift = self.metrics.set_drift(self.drift())
            snapshot = {**self.live.snapshot(self.holder.version), **drift}
            await self.store().put_worker_stats(self.worker_name, snapshot, ttl_s=15)
        except Exception:
            log.debug("could not publish live stats", exc_info=True)

    async def measure_consumer_lag(self) -> None:
        try:
            lag = await self.consumer.lag()
        except Exception:
            log.debug("could not measure consumer lag", exc_info=True)
            return
        self.lag_gauge.update(lag)
        self.live.lag_messages = sum(lag.values())

    def owned_events_partitions(self) -> list[int]:
        topic = self.settings.topic_events
        return sorted(tp.partition for tp in self.consumer.assigned if tp.topic == topic)

    async def count_persona_mix(self) -> None:
        """Visitors per assigned top persona over this worker's partitions (kept in Redis
        by the commit script), so the sum over workers is the persona mix."""
        try:
            counts = await self.states.mix(self.owned_events_partitions())
        except Exception:
            log.debug("could not count the persona mix", exc_info=True)
            return
        for persona, n in counts.items():
            self.metrics.visitors.labels(persona).set(n)
        self.live.visitors = counts

    async def expire_visitors(self) -> int:
        """Visitors idle for PERSONA_VISITOR_TTL_S leave: state, record, audiences, mix."""
        removed = 0
        try:
            for partition in self.owned_events_partitions():
                while n := await self.states.expire_due(partition, time.time()):
                    removed += n
        except Exception:
            log.warning("visitor expiry failed; next try at the next sweep", exc_info=True)
        if removed:
            self.metrics.visitors_expired.inc(removed)
            ttl = self.settings.visitor_ttl_s
            log.info("expired %d visitors idle for %ds", removed, ttl)
        return removed

    async def sweep_audiences(self) -> None:
        """Audience members whose ps:visitor record expired (TTL) leave the audience."""
        try:
            removed = await self.store().sweep_audiences(self.personas)
            if removed:
                log.info("swept %d expired visitors from audiences", removed)
        except Exception:
            log.warning("audience sweep failed; next try in 5 minutes", exc_info=True)


def record_batch(
    metrics: WorkerMetrics, outcome: Outcome, holder: ModelHolder, settings: Settings
) -> None:
    result = outcome.result
    for topic, n in outcome.effects.items():
        metrics.produced.labels(topic).inc(n)
    metrics.consumed.labels(settings.topic_events).inc(outcome.consumed_events)
    if outcome.consumed_control:
        metrics.consumed.labels(settings.topic_control).inc(outcome.consumed_control)
    metrics.batch_seconds.observe(outcome.pipeline_seconds)
    metrics.redis_write.observe(outcome.redis_seconds)
    for latency in outcome.latencies:
        metrics.event_to_redis.observe(latency)
    if result.opted_out:
        metrics.opted_out.inc(result.opted_out)
    for error in result.emit_errors:
        log.error("could not build the record of %s", error)
    for dead in result.dead_letters:
        log.warning("dead letter (%s) from %s: %s", dead.reason, dead.source, dead.detail)
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
    metrics.model_unlabelled_weight.set(summary["unlabelled_weight"])
    if summary.get("log_loss") is not None:
        metrics.model_log_loss.set(summary["log_loss"])
        metrics.model_accuracy.set(summary["accuracy"])
