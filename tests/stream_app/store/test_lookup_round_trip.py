"""Lookups and /v1/personas: same answers from both stores, ONE Redis round trip each."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from stream_app.store import VisitorStore, VisitorWrite
from stream_app.store.redis_store import RedisStore
from tests.stream_app.store.test_contract import record, store  # noqa: F401 - the fixture


async def test_get_encoded_is_the_stored_json_by_any_id(store: VisitorStore) -> None:  # noqa: F811
    rec = record("v1", {"a": 0.7, "b": 0.3}, user_id="crm-1")
    await store.write([VisitorWrite(rec, aliases=("anon-1",))])
    for any_id in ("v1", "crm-1", "anon-1"):
        encoded = await store.get_encoded(any_id)
        assert encoded is not None and orjson.loads(encoded) == rec, any_id
        assert await store.get(any_id) == rec
    assert await store.get_encoded("nobody") is None


async def test_personas_live_sizes_and_kpis_in_order(store: VisitorStore) -> None:  # noqa: F811
    await store.write(
        [
            VisitorWrite(record("v1", {"a": 0.7, "b": 0.3}), kpi=(("a", "nps_promoters", 1.0),)),
            VisitorWrite(record("v2", {"a": 0.6, "b": 0.4})),
        ]
    )
    live = await store.personas_live(["b", "a", "none"])
    assert live == [(0, {}), (2, {"nps_promoters": 1.0}), (0, {})]
    assert await store.personas_live([]) == []


class Monitor:
    """Every command Redis receives, from a MONITOR connection (ours filtered by prefix)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix
        self.commands: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "MONITOR did not start"

    def _run(self) -> None:
        with self.client.monitor() as m:
            self._ready.set()
            for cmd in m.listen():
                if f"{self.prefix}stop" in cmd["command"]:
                    return
                if self.prefix in cmd["command"]:
                    self.commands.append(cmd)

    def stop(self) -> list[dict[str, Any]]:
        self.client.echo(f"{self.prefix}stop")
        self._thread.join(5)
        self.client.close()
        return self.commands


@pytest.fixture
def redis_store(redis_url: str, unique: str) -> Iterator[tuple[RedisStore, str]]:
    prefix = f"test:{unique}:"
    yield RedisStore.from_url(redis_url, prefix=prefix, ttl_s=600), prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


async def test_a_lookup_costs_one_round_trip(
    redis_store: tuple[RedisStore, str], redis_url: str
) -> None:
    real, prefix = redis_store
    rec = record("v1", {"a": 0.7, "b": 0.3}, user_id="crm-1")
    await real.write([VisitorWrite(rec, aliases=("anon-1",))])
    await real.get_encoded("v1")  # loads the script once (NOSCRIPT -> SCRIPT LOAD) if needed
    await real.personas_live(["a", "b"])
    monitor = Monitor(redis_url, prefix)
    try:
        for any_id in ("v1", "crm-1", "anon-1", "nobody"):
            assert (await real.get_encoded(any_id) is None) == (any_id == "nobody")
        await real.personas_live(["a", "b"])
    finally:
        commands = monitor.stop()
        await real.close()
    sent = [c for c in commands if c["client_type"] != "lua"]  # what came over the network
    inside = [c for c in commands if c["client_type"] == "lua"]
    assert [c["command"].split()[0] for c in sent] == ["EVALSHA"] * 5, sent
    # Inside Redis the script resolved the alias and user ids: more GETs, no more round trips.
    assert len(inside) > 5
