"""Kafka topics of the contract (INTERFACES.md 1.3), created at start-up when missing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from stream_app.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def contract_topics(settings: Settings) -> list[TopicSpec]:
    """The four topics every process relies on, with their configs."""
    p, r = settings.topic_partitions, settings.topic_replication
    compacted = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
    return [
        TopicSpec(settings.topic_events, p, r),
        TopicSpec(settings.topic_dlq, p, r, {"retention.ms": str(14 * 24 * 3600 * 1000)}),
        TopicSpec(settings.topic_assignments, p, r, compacted),
        # Model snapshots: compacted by model name, one partition keeps them ordered.
        TopicSpec(settings.topic_models, 1, r, compacted),
        # Internal: co-partitioned with the events topic / single-partition for the trainer.
        TopicSpec(settings.topic_control, p, r),
        TopicSpec(settings.topic_training, 1, r),
    ]


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create any missing contract topic; return the names that were created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
    )
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in contract_topics(settings) if t.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(t.name, t.partitions, t.replication, topic_configs=t.config)
                    for t in missing
                ]
            )
            log.info("created topics %s", [t.name for t in missing])
        # Wait until metadata shows them, so the first produce does not race creation.
        deadline = asyncio.get_running_loop().time() + timeout_s
        while missing:
            names = set(await admin.list_topics())
            if all(t.name in names for t in missing):
                break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"topics not visible after {timeout_s}s: {missing}")
            await asyncio.sleep(0.2)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def kafka_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request in time."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return True
    except Exception:
        return False
    finally:
        try:
            await asyncio.wait_for(admin.close(), timeout_s)
        except Exception:
            log.debug("closing admin client failed", exc_info=True)
