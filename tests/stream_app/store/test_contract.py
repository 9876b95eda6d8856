"""One contract for every VisitorStore implementation (memory and real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from stream_app.store import VisitorStore, VisitorWrite
from stream_app.store.memory_store import MemoryStore
from stream_app.store.redis_store import RedisStore


def record(vid: str, personas: dict[str, float], user_id: str | None = None) -> dict[str, Any]:
    top = max(personas, key=lambda p: personas[p])
    return {
        "visitor_id": vid,
        "user_id": user_id,
        "personas": personas,
        "top": {"persona": top, "probability": personas[top]},
        "phase": "awareness",
        "events": 1,
        "feedback": {"nps": None, "csat": None, "ces": None},
        "model_version": 1,
        "updated_at": "2026-11-22T10:15:00Z",
    }


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[VisitorStore]:
    if request.param == "memory":
        yield MemoryStore(audience_threshold=0.5)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test:{unique}:"
    redis_store = RedisStore.from_url(url, prefix=prefix, ttl_s=600, audience_threshold=0.5)
    yield redis_store
    client = redis_store._r
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await redis_store.close()


async def test_ping(store: VisitorStore) -> None:
    assert await store.ping() is True


async def test_unknown_visitor_is_none(store: VisitorStore) -> None:
    assert await store.get("nobody") is None
    assert await store.resolve("nobody") is None


async def test_write_then_get_round_trips_the_record(store: VisitorStore) -> None:
    rec = record("v1", {"a": 0.7, "b": 0.3})
    await store.write([VisitorWrite(rec)])
    assert await store.get("v1") == rec


async def test_audience_follows_threshold(store: VisitorStore) -> None:
    await store.write(
        [
            VisitorWrite(record("v1", {"a": 0.8, "b": 0.2})),
            VisitorWrite(record("v2", {"a": 0.6, "b": 0.4})),
            VisitorWrite(record("v3", {"a": 0.1, "b": 0.9})),
        ]
    )
    assert await store.audience_size("a") == 2
    assert await store.audience("a", 0.5, 10) == [("v1", 0.8), ("v2", 0.6)]
    assert await store.audience("a", 0.7, 10) == [("v1", 0.8)]
    assert await store.audience("b", 0.5, 10) == [("v3", 0.9)]
    # Falling below the threshold leaves the audience.
    await store.write([VisitorWrite(record("v1", {"a": 0.3, "b": 0.7}))])
    assert await store.audience("a", 0.0, 10) == [("v2", 0.6)]
    assert [m for m, _ in await store.audience("b", 0.5, 10)] == ["v3", "v1"]


async def test_audience_paging(store: VisitorStore) -> None:
    await store.write(
        [VisitorWrite(record(f"v{i}", {"a": 0.5 + i / 100, "b": 0.5 - i / 100})) for i in range(5)]
    )
    first = await store.audience("a", 0.5, 2, 0)
    second = await store.audience("a", 0.5, 2, 2)
    assert [m for m, _ in first] == ["v4", "v3"]
    assert [m for m, _ in second] == ["v2", "v1"]


async def test_kpi_increments_accumulate(store: VisitorStore) -> None:
    await store.write([VisitorWrite(record("v1", {"a": 1.0}), kpi=(("a", "nps_promoters", 1.0),))])
    await store.write(
        [
            VisitorWrite(
                record("v2", {"a": 1.0}),
                kpi=(("a", "nps_promoters", 1.0), ("a", "csat_sum", 4.0), ("a", "csat_count", 1)),
            )
        ]
    )
    assert await store.kpi("a") == {"nps_promoters": 2.0, "csat_sum": 4.0, "csat_count": 1.0}
    assert await store.kpi("unknown") == {}


async def test_lookup_by_user_and_alias(store: VisitorStore) -> None:
    await store.write([VisitorWrite(record("v-old", {"a": 0.9, "b": 0.1}))])
    merged = record("v-new", {"a": 0.9, "b": 0.1}, user_id="u-1")
    await store.write([VisitorWrite(merged, aliases=("v-old",))])
    assert await store.resolve("u-1") == "v-new"
    assert await store.resolve("v-old") == "v-new"
    assert await store.get("u-1") == merged
    assert await store.get("v-old") == merged
    # The merged-away visitor no longer sits in audiences on its own.
    assert [m for m, _ in await store.audience("a", 0.5, 10)] == ["v-new"]


async def test_identity_is_kept_for_export(store: VisitorStore) -> None:
    await store.write(
        [VisitorWrite(record("v1", {"a": 1.0}), identity={"email_sha256": "ab" * 32})]
    )
    assert await store.identity("v1") == {"email_sha256": "ab" * 32}


async def test_delete_forgets_everything(store: VisitorStore) -> None:
    await store.write([VisitorWrite(record("v-old", {"a": 0.9, "b": 0.1}))])
    await store.write(
        [
            VisitorWrite(
                record("v1", {"a": 0.9, "b": 0.1}, user_id="u-1"),
                identity={"email_sha256": "cd" * 32},
                aliases=("v-old",),
            ),
            VisitorWrite(record("v2", {"a": 0.8, "b": 0.2})),
        ]
    )
    assert await store.delete("u-1") is True
    for ident in ("v1", "v-old", "u-1"):
        assert await store.get(ident) is None
        assert await store.resolve(ident) is None
    assert await store.identity("v1") == {}
    assert [m for m, _ in await store.audience("a", 0.0, 10)] == ["v2"]
    assert await store.delete("v1") is False


async def test_sweep_removes_members_whose_record_expired(store: VisitorStore) -> None:
    await store.write(
        [
            VisitorWrite(record("v1", {"a": 0.9, "b": 0.1})),
            VisitorWrite(record("v2", {"a": 0.8, "b": 0.2})),
        ]
    )
    # Simulate the TTL expiring v1's record (Redis) / the record vanishing (memory).
    if isinstance(store, RedisStore):
        await store._r.delete(store._k.visitor("v1"))
    else:
        assert isinstance(store, MemoryStore)
        del store.visitors["v1"]
    assert await store.sweep_audiences(["a", "b"]) == 1
    assert await store.audience("a", 0.0, 10) == [("v2", 0.8)]
    assert await store.sweep_audiences(["a", "b"]) == 0


async def test_worker_stats_round_trip(store: VisitorStore) -> None:
    await store.put_worker_stats("w1", {"events_total": 10, "e2r_p99_s": 0.12}, ttl_s=30)
    await store.put_worker_stats("w2", {"events_total": 5}, ttl_s=30)
    await store.put_worker_stats("w1", {"events_total": 12}, ttl_s=30)
    assert await store.worker_stats() == {"w1": {"events_total": 12.0}, "w2": {"events_total": 5.0}}


async def test_discovery_round_trip(store: VisitorStore) -> None:
    found = [{"cluster": 3, "share": 0.2, "top_features": [["page=careers", 4.0]]}]
    await store.put_discovery("w1", found, ttl_s=60)
    assert await store.discovery() == {"w1": found}
