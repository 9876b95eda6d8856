"""A batch applied to the states in Redis (real Redis, fake Kafka): replays and zombie
workers never double a count; consent opt_out forgets and stops profiling, opt_in lifts it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from models.catalog import Catalog
from stream_app.settings import DEFAULT_CATALOG
from stream_app.store.state_store import StateStore
from stream_app.worker.batch import VISITOR_CODEC, BatchProcessor, Effect, Record
from stream_app.worker.model_holder import ModelHolder
from stream_app.worker.pipeline import Pipeline

EV, CTL = "ev", "ctl"


class Emitted:
    def __init__(self) -> None:
        self.effects: list[Effect] = []

    async def send_all(self, effects: list[Effect]) -> None:
        self.effects.extend(effects)


@pytest.fixture
async def setup(redis_url: str, unique: str) -> AsyncIterator[tuple[BatchProcessor, Emitted, str]]:
    catalog = Catalog.load(DEFAULT_CATALOG)
    client = Redis.from_url(redis_url)
    prefix = f"test:{unique}:"
    states = StateStore(
        client,
        prefix=prefix,
        group="g",
        events_topic=EV,
        ttl_s=3600,
        personas=catalog.persona_ids,
        codec=VISITOR_CODEC,
    )
    emitted = Emitted()
    pipeline = Pipeline(ModelHolder(catalog, 7 * 24 * 3600.0))
    processor = BatchProcessor(
        pipeline,
        states,
        emitted,
        events_topic=EV,
        control_topic=CTL,
        dlq_topic="dlq",
        assignments_topic="asg",
        training_topic="train",
        ttl_s=3600,
    )
    run_id, _ = await states.read_offsets()
    yield processor, emitted, run_id
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def event(offset: int, event_id: str, vid: str = "v1", **extra: Any) -> Record:
    doc = {
        "event_id": event_id,
        "type": "page_view",
        "visitor_id": vid,
        "ts": "2026-11-22T10:15:00Z",
        "url": "https://acme.example/docs/api",
        **extra,
    }
    return Record(EV, 0, offset, vid.encode(), json.dumps(doc).encode(), 1_800_000_000_000 + offset)


def consent(offset: int, status: str, vid: str = "v1") -> Record:
    doc = {
        "event_id": f"c{offset}",
        "type": "consent",
        "visitor_id": vid,
        "ts": "2026-11-22T10:15:00Z",
        "status": status,
        "source": "banner",
    }
    return Record(EV, 0, offset, vid.encode(), json.dumps(doc).encode(), 1_800_000_000_000 + offset)


async def events_of(processor: BatchProcessor, vid: str = "v1") -> int | None:
    raw = await processor.states._r.get(processor.states.keys.visitor(vid))
    return json.loads(raw)["events"] if raw else None


async def test_a_replayed_batch_counts_once(setup: tuple[BatchProcessor, Emitted, str]) -> None:
    processor, _, run_id = setup
    batch = [event(0, "e0"), event(1, "e1"), event(2, "e2", vid="v2")]
    first = await processor.run(batch, run_id)
    assert first.ok and first.next_offsets == {(EV, 0): 3}
    again = await processor.run(batch, run_id)  # a crash before the offsets were kept
    assert again.ok and again.result.replayed == 3 and again.result.processed == 0
    assert await events_of(processor) == 2 and await events_of(processor, "v2") == 1
    # The same event id at a new offset (a client retry) is a duplicate, not a new event.
    retry = await processor.run([event(3, "e1")], run_id)
    assert retry.result.duplicates == 1 and await events_of(processor) == 2
    assert (await processor.states.read_offsets())[1] == {(EV, 0): 4}


async def test_a_zombie_batch_is_refused(setup: tuple[BatchProcessor, Emitted, str]) -> None:
    processor, _, run_id = setup
    await processor.run([event(0, "e0")], run_id)
    stale = await processor.states.read(["v1"])
    await processor.run([event(1, "e1"), event(2, "e2")], run_id)  # the new owner
    # The zombie computed offset 1 on the state it read before: its write is refused.
    result, _ = processor._process(processor.messages([event(1, "e1")]), stale)
    commits = processor.commits(result, stale, {"v1": 0})
    assert await processor.states.commit(commits) == {"v1": 0}
    assert await events_of(processor) == 3


async def test_opt_out_forgets_and_drops_later_events_until_opt_in(
    setup: tuple[BatchProcessor, Emitted, str],
) -> None:
    processor, emitted, run_id = setup
    await processor.run([event(0, "e0"), event(1, "e1")], run_id)
    assert await events_of(processor) == 2
    out = await processor.run([consent(2, "opt_out")], run_id)
    assert out.ok and await events_of(processor) is None
    assert ("asg", b"v1", None) in emitted.effects, "an assignment tombstone"
    later = await processor.run([event(3, "e3"), event(4, "e4")], run_id)
    assert later.result.opted_out == 2 and await events_of(processor) is None
    stored = (await processor.states.read(["v1"]))["v1"]
    assert await processor.states._r.ttl(processor.states.state_key("v1")) == -1
    assert stored.state and stored.state.opted_out
    await processor.run([consent(5, "opt_in"), event(6, "e6")], run_id)
    assert await events_of(processor) == 1, "profiled afresh after opt_in"


async def test_consent_is_not_evidence(setup: tuple[BatchProcessor, Emitted, str]) -> None:
    processor, _, run_id = setup
    await processor.run([event(0, "e0")], run_id)
    before = (await processor.states.read(["v1"]))["v1"].state
    out = await processor.run([consent(1, "opt_in")], run_id)  # not opted out: no change
    assert out.result.states == {} and (await processor.states.read(["v1"]))["v1"].state == before


async def test_the_next_batch_counts_on_the_one_being_applied(
    setup: tuple[BatchProcessor, Emitted, str],
) -> None:
    """Pipelining: batch 2 is computed on batch 1's states before batch 1 is committed."""
    processor, _, run_id = setup
    first = await processor.prepare([event(0, "e0"), event(1, "e1")])
    second = await processor.prepare([event(2, "e2"), event(3, "e3", vid="v2")], first.overlay())
    assert (await processor.apply(processor.pack(first), run_id)).ok
    assert (await processor.apply(processor.pack(second), run_id)).ok
    assert await events_of(processor) == 3 and await events_of(processor, "v2") == 1
    assert (await processor.states.read_offsets())[1] == {(EV, 0): 4}


async def test_a_batch_computed_on_a_batch_not_applied_is_refused(
    setup: tuple[BatchProcessor, Emitted, str],
) -> None:
    processor, _, run_id = setup
    first = await processor.prepare([event(0, "e0")])
    second = await processor.prepare([event(1, "e1")], first.overlay())
    out = await processor.apply(processor.pack(second), run_id)  # the first never landed
    assert out.conflicts == ["v1"] and not out.ok and await events_of(processor) is None
    assert (await processor.states.read_offsets())[1] == {}, "no offsets past a refusal"
