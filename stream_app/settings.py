"""All runtime configuration, read from ``PERSONA_*`` environment variables.

This is the only module that reads the environment. Every process builds one
:class:`Settings` (``Settings()``) at start-up and passes it down; nothing else
calls ``os.environ``. Every field is documented in README.md ("Configuration").
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "models" / "catalogs" / "b2b_saas.yaml"


class Settings(BaseSettings):
    """Frozen settings for the collector, worker and API processes."""

    model_config = SettingsConfigDict(env_prefix="PERSONA_", frozen=True, extra="ignore")

    # --- Kafka -----------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated"
    )
    topic_events: str = Field("persona.events", description="validated native events")
    topic_dlq: str = Field("persona.events.dlq", description="dead letters with a reason")
    topic_assignments: str = Field("persona.assignments", description="compacted assignment feed")
    topic_models: str = Field("persona.models", description="versioned model snapshots")
    topic_partitions: int = Field(4, ge=1, description="partitions for topics created at start-up")
    topic_replication: int = Field(1, ge=1, description="replication factor for created topics")
    kafka_timeout_s: float = Field(5.0, gt=0, description="bound on one produce before 503")
    kafka_session_timeout_s: float = Field(
        10.0, gt=0, description="consumer session timeout: how soon a dead worker's partitions move"
    )
    consumer_group: str = Field(
        "persona-stream",
        description="consumer group of the events path (faust's own group: <group>-faust)",
    )

    # --- Redis -----------------------------------------------------------------
    redis_url: SecretStr = Field(SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL")
    redis_prefix: str = Field("ps:", description="prefix of every Redis key")
    visitor_ttl_s: int = Field(
        30 * 24 * 3600,
        ge=60,
        description="a visitor idle that long expires: state, record, audiences (Redis)",
    )
    state_sweep_interval_s: int = Field(
        600, ge=1, description="how often a worker expires the idle visitors of its partitions"
    )
    batch_max_events: int = Field(
        500, ge=1, le=100_000, description="most events the worker processes in one batch"
    )
    batch_within_ms: int = Field(
        20,
        ge=1,
        le=10_000,
        description="how long the worker gathers a batch: longer = more throughput, "
        "more event-to-Redis latency",
    )
    dedup_window: int = Field(
        64, ge=1, description="event ids remembered per visitor for de-duplication"
    )

    # --- HTTP API --------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="API bind address")
    api_port: int = Field(8000, ge=1, le=65535, description="API port")
    write_keys: list[SecretStr] = Field(
        default_factory=list,
        description="publishable write keys (JSON list): collect events, read the assignment "
        "of the visitor id sent",
    )
    read_keys: list[SecretStr] = Field(
        default_factory=list,
        description="secret read keys (JSON list): what write keys may, plus lookups by "
        "visitor or user id and GET /v1/personas",
    )
    admin_keys: list[SecretStr] = Field(
        default_factory=list,
        description="secret admin keys (JSON list): everything (DELETE, audience export, "
        "stats, dashboard)",
    )
    auth_disabled: bool = Field(
        False, description="no key checks at all: for local development only"
    )
    rate_limit_ip_per_s: float = Field(
        50.0,
        ge=0,
        description="requests per second per client IP on collection and lookups "
        "(0 = no limit), per API process",
    )
    rate_limit_ip_burst: int = Field(
        200, ge=1, description="bucket size of the per-IP limit (requests allowed at once)"
    )
    rate_limit_key_per_s: float = Field(
        2000.0,
        ge=0,
        description="requests per second per key on collection and lookups "
        "(0 = no limit), per API process",
    )
    rate_limit_key_burst: int = Field(10000, ge=1, description="bucket size of the per-key limit")
    keep_client_ip: bool = Field(
        False,
        description="keep context.ip in the events sent to Kafka (default: removed at the edge)",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins (JSON list, '*' = any) allowed to call the tracker routes "
        "(/tracker.js, /v1/events, /v1/visitors/..., /v1/personas) from a browser",
    )
    max_body_bytes: int = Field(512 * 1024, ge=1024, description="largest request body")
    max_batch_events: int = Field(500, ge=1, description="largest batch")
    hash_pii: bool = Field(True, description="SHA-256 e-mail/phone traits at the edge")

    # --- Location at the edge (stream_app/geo) ---------------------------------
    geo_cdn_headers: list[str] = Field(
        default_factory=lambda: [
            "CF-IPCountry",
            "CloudFront-Viewer-Country",
            "X-Vercel-IP-Country",
            "Fastly-Geo-Country-Code",
            "X-AppEngine-Country",
        ],
        description="request headers (JSON list, tried in order) whose country code the "
        "collector trusts; [] when no CDN sets or overwrites them",
    )
    geo_ip_lookup: bool = Field(
        True, description="look the client IP up in the offline IP-to-country database"
    )
    geo_mmdb_path: Path | None = Field(
        None, description="a MaxMind .mmdb file used instead of the offline database"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses/CIDRs (JSON list) of proxies whose X-Forwarded-For is believed",
    )

    # --- Worker ----------------------------------------------------------------
    worker_web_host: str = Field(
        "127.0.0.1", description="bind address of the worker's web port (0.0.0.0 in containers)"
    )
    worker_web_port: int = Field(6066, ge=1, le=65535, description="faust web / metrics port")
    worker_data_dir: Path = Field(Path("var/worker"), description="faust data directory")

    # --- Personas --------------------------------------------------------------
    catalog_path: Path = Field(DEFAULT_CATALOG, description="persona catalog YAML")
    audience_threshold: float = Field(0.5, gt=0, le=1, description="audience membership")
    audience_hysteresis: float = Field(
        0.1, ge=0, lt=1, description="margin before the retargeting feed changes its mind"
    )
    snapshot_every_labels: int = Field(50, ge=1, description="publish a model after N labels")
    snapshot_every_s: float = Field(10.0, gt=0, description="...or after this many seconds")
    state_half_life_s: float = Field(7 * 24 * 3600, gt=0, description="visitor state decay")
    unlabelled_weight: float = Field(
        1.0, ge=0, le=1, description="an unlabelled visitor's weight in training (0: labels only)"
    )
    unlabelled_min_labels: int = Field(
        50, ge=1, description="labels the model needs before unlabelled visitors train it"
    )
    unlabelled_max_per_s: float = Field(
        500.0, gt=0, description="soft examples per second one worker sends to the trainer"
    )

    # Internal topics, named after the consumer group (not part of the public contract).
    @property
    def topic_control(self) -> str:
        """Forget requests from the API to the worker owning the visitor (keyed by visitor)."""
        return f"{self.consumer_group}.control"

    @property
    def topic_training(self) -> str:
        """Label examples joined with visitor state; ONE partition, so one trainer at a time."""
        return f"{self.consumer_group}.training"
