"""Prometheus metrics of the API and the worker (units in names, ``_total`` counters).

Each process builds its own :class:`ApiMetrics` / :class:`WorkerMetrics` with its own
``CollectorRegistry``, so tests can build as many as they like.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Histogram(
            "persona_api_request_duration_seconds",
            "API request latency by route, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events_accepted = Counter(
            "persona_collector_events_accepted_total",
            "events handed to Kafka",
            ["endpoint"],
            registry=r,
        )
        self.events_rejected = Counter(
            "persona_collector_events_rejected_total",
            "events refused by validation",
            ["endpoint"],
            registry=r,
        )
        self.kafka_unavailable = Counter(
            "persona_collector_kafka_unavailable_total", "requests answered 503", registry=r
        )
        self.auth_refused = Counter(
            "persona_api_auth_refused_total",
            "requests refused for their key: 401 (missing or unknown) or 403 (role)",
            ["status"],
            registry=r,
        )
        self.rate_limited = Counter(
            "persona_api_rate_limited_total",
            "requests answered 429, by the bucket that was empty (ip or key)",
            ["scope"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "persona_worker_events_processed_total",
            "events processed, by type",
            ["type"],
            registry=r,
        )
        self.duplicates = Counter(
            "persona_worker_events_duplicate_total",
            "events skipped as already processed",
            registry=r,
        )
        self.forgotten_discarded = Counter(
            "persona_worker_events_forgotten_total",
            "events dropped because they were sent before their visitor was deleted",
            registry=r,
        )
        self.opted_out = Counter(
            "persona_worker_events_opted_out_total",
            "events dropped, not profiled, because their visitor opted out (consent)",
            registry=r,
        )
        self.dead_letters = Counter(
            "persona_worker_dead_letters_total",
            "messages sent to the DLQ, by reason",
            ["reason"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "persona_worker_batch_duration_seconds",
            "pipeline time per batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.event_to_redis = Histogram(
            "persona_worker_event_to_redis_seconds",
            "from the Kafka record timestamp to the Redis write",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_write = Histogram(
            "persona_worker_redis_write_duration_seconds",
            "one pipelined Redis write",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.top_persona = Counter(
            "persona_worker_top_persona_total",
            "visitor records written, by top persona",
            ["persona"],
            registry=r,
        )
        self.visitors = Gauge(
            "persona_worker_visitors",
            "visitors held by this worker (its partitions), by assigned top persona; "
            "the persona mix is each persona's sum over workers divided by the total",
            ["persona"],
            registry=r,
        )
        self.visitors_expired = Counter(
            "persona_worker_visitors_expired_total",
            "visitors expired (state, record, audiences) after PERSONA_VISITOR_TTL_S idle",
            registry=r,
        )
        self.consumed = Counter(
            "persona_worker_messages_consumed_total",
            "messages consumed, by topic",
            ["topic"],
            registry=r,
        )
        self.produced = Counter(
            "persona_worker_messages_produced_total",
            "messages produced, by topic (DLQ, assignments, training, control, re-keyed)",
            ["topic"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "persona_worker_consumer_lag_messages",
            "messages on the broker not yet applied and stored by this worker, per partition",
            ["topic", "partition"],
            registry=r,
        )
        self.model_version = Gauge(
            "persona_model_version", "model version used for scoring", registry=r
        )
        self.model_log_loss = Gauge(
            "persona_model_log_loss", "progressive-validation log loss", registry=r
        )
        self.model_accuracy = Gauge(
            "persona_model_accuracy", "progressive-validation accuracy", registry=r
        )
        self.model_unlabelled_weight = Gauge(
            "persona_model_unlabelled_weight",
            "unlabelled visitors' total weight in the model used for scoring (online EM; "
            "a label counts 1)",
            registry=r,
        )
        self.model_drift = Gauge(
            "persona_model_drift",
            "1 while ADWIN flags a change (log_loss: the model got worse, overall or on one "
            "persona's labels; persona_mix: that persona's share of labels), on the trainer",
            ["signal", "persona"],
            registry=r,
        )

    def set_drift(self, flags: dict[str, dict[str, bool]]) -> dict[str, float]:
        """Set the drift gauges from ``PersonaMapper.drift()``; returns them as live-stats
        keys (``drift:{signal}:{persona}``)."""
        out = {}
        for signal, by_persona in flags.items():
            for persona, raised in by_persona.items():
                self.model_drift.labels(signal, persona).set(float(raised))
                out[f"drift:{signal}:{persona}"] = float(raised)
        return out

    def render(self) -> bytes:
        return generate_latest(self.registry)
