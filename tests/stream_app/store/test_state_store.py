"""The compare-and-set of the visitor states in Redis (real Redis): an older offset is
refused, the same offset again is idempotent, the offsets follow the Redis instance."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from stream_app.store import VisitorWrite
from stream_app.store.state_store import (
    APPLIED,
    REFUSED,
    SAME,
    StateStore,
    StoredState,
    VisitorCommit,
    decode_state,
    encode_state,
)

PERSONAS = ["a", "b"]


@pytest.fixture
async def store(redis_url: str, unique: str) -> AsyncIterator[StateStore]:
    client = Redis.from_url(redis_url)
    prefix = f"test:{unique}:"
    yield StateStore(
        client, prefix=prefix, group="g", events_topic="ev", ttl_s=600, personas=PERSONAS
    )
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def record(vid: str, events: int, a: float = 0.8) -> dict[str, object]:
    return {"visitor_id": vid, "user_id": None, "events": events, "personas": {"a": a, "b": 1 - a}}


def commit(
    base: StoredState, offsets: tuple[int, int], events: int, kpi: float = 0.0
) -> VisitorCommit:
    write = VisitorWrite(record("v1", events), kpi=(("a", "nps_sum", kpi),) if kpi else ())
    state = {"visitor_id": "v1", "events": events, "assigned": {"top": "a"}}
    return VisitorCommit("v1", 0, base, offsets, state, "a", write, expire_at=2e9)


async def test_a_commit_applies_once_and_the_same_offsets_again_change_nothing(
    store: StateStore,
) -> None:
    first = commit(StoredState(), (10, -1), events=1, kpi=9.0)
    assert await store.commit([first]) == {"v1": APPLIED}
    assert await store.commit([first]) == {"v1": SAME}  # a retry: idempotent
    stored = (await store.read(["v1"]))["v1"]
    assert stored.offsets == (10, -1) and stored.state == {**first.state}  # type: ignore[dict-item]
    kpi = await store._r.hgetall(store.keys.kpi("a"))
    assert kpi == {b"nps_sum": b"9"}, "a KPI increment is applied once"
    assert await store._r.zscore(store.keys.audience("a"), "v1") == pytest.approx(0.8)
    assert await store.mix([0]) == {"a": 1, "b": 0}


async def test_an_older_offset_is_refused_and_rolls_nothing_back(store: StateStore) -> None:
    base = StoredState()
    assert await store.commit([commit(base, (10, -1), events=1)]) == {"v1": APPLIED}
    newer = (await store.read(["v1"]))["v1"]
    assert await store.commit([commit(newer, (20, -1), events=2)]) == {"v1": APPLIED}
    # A zombie that read the state at offset 10 (or none) writes what it computed.
    assert await store.commit([commit(base, (15, -1), events=5)]) == {"v1": REFUSED}
    assert await store.commit([commit(newer, (15, -1), events=5)]) == {"v1": REFUSED}
    stored = (await store.read(["v1"]))["v1"]
    assert stored.offsets == (20, -1) and stored.state and stored.state["events"] == 2
    raw = await store._r.get(store.keys.visitor("v1"))
    assert b'"events":2' in raw


async def test_offsets_are_stored_only_in_the_instance_they_were_read_from(
    store: StateStore,
) -> None:
    run_id, offsets = await store.read_offsets()
    assert offsets == {} and len(run_id) == 40
    assert await store.write_offsets({("ev", 0): 11, ("ctl", 0): 3}, run_id)
    assert (await store.read_offsets())[1] == {("ev", 0): 11, ("ctl", 0): 3}
    assert not await store.write_offsets({("ev", 0): 99}, "0" * 40)  # Redis restarted
    assert (await store.read_offsets())[1][("ev", 0)] == 11


async def test_a_forget_deletes_the_serving_keys_and_expiry_removes_idle_visitors(
    store: StateStore,
) -> None:
    assert await store.commit([commit(StoredState(), (1, -1), events=1)]) == {"v1": APPLIED}
    base = (await store.read(["v1"]))["v1"]
    marker = {"visitor_id": "v1", "forgotten_at": 5.0, "opted_out": True}
    forget = VisitorCommit("v1", 0, base, (1, 4), marker, "", forget=True, persist=True)
    assert await store.commit([forget]) == {"v1": APPLIED}
    assert await store._r.get(store.keys.visitor("v1")) is None
    assert await store._r.zscore(store.keys.audience("a"), "v1") is None
    assert await store._r.ttl(store.state_key("v1")) == -1, "an opt-out marker never expires"
    assert await store.mix([0]) == {"a": 0, "b": 0}

    assert await store.commit([commit(StoredState(), (2, -1), events=1)]) == {"v1": REFUSED}
    other = VisitorCommit(
        "v2",
        0,
        StoredState(),
        (3, -1),
        {"visitor_id": "v2"},
        "b",
        VisitorWrite(record("v2", 1, 0.2)),
        expire_at=100.0,
    )
    assert await store.commit([other]) == {"v2": APPLIED}
    assert await store.expire_due(0, now=50.0) == 0
    assert await store.expire_due(0, now=101.0) == 1
    assert (await store.read(["v2"]))["v2"].exists is False
    assert await store._r.get(store.keys.visitor("v2")) is None
    assert await store._r.zscore(store.keys.audience("b"), "v2") is None


def test_the_encoding_round_trips() -> None:
    raw = encode_state((3, 7), "a", {"visitor_id": "v", "events": 2})
    assert raw.startswith(b"3,7\ta\n")
    assert decode_state(raw) == StoredState((3, 7), {"visitor_id": "v", "events": 2}, "a", True)
    assert decode_state(None) == StoredState()


async def test_offsets_in_the_commit_call_follow_its_compare_and_set(store: StateStore) -> None:
    run_id, _ = await store.read_offsets()
    first = store.pack([commit(StoredState(), (10, -1), events=1)])
    assert await store.commit_with_offsets(first, {("ev", 0): 11}, run_id) == (
        {"v1": APPLIED},
        True,
    )
    assert (await store.read_offsets())[1] == {("ev", 0): 11}
    stale = store.pack([commit(StoredState(), (12, -1), events=2)])  # a zombie's batch
    assert await store.commit_with_offsets(stale, {("ev", 0): 13}, run_id) == (
        {"v1": REFUSED},
        None,
    )
    newer = store.pack([commit((await store.read(["v1"]))["v1"], (12, -1), events=2)])
    assert await store.commit_with_offsets(newer, {("ev", 0): 13}, "0" * 40) == (
        {"v1": APPLIED},
        False,
    ), "a restarted Redis: the states are applied, the offsets are not"
    assert (await store.read_offsets())[1] == {("ev", 0): 11}
