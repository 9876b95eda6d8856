"""Redis implementation of :class:`~stream_app.store.base.VisitorStore`."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
from redis.asyncio import Redis

from stream_app.store.base import VisitorWrite
from stream_app.store.keys import Keys
from stream_app.store.lookup_lua import (
    LOOKUP_LUA,
    PERSONAS_LIVE_LUA,
    lookup_keys,
    personas_live_keys,
)
from stream_app.store.multiplexed import RedisMultiplexer

# One visitor's record and audience memberships in one command: SET the record with its
# TTL, then ZADD (score given) or ZREM ("" given) the visitor in each audience key. The same
# commands the pipeline sent one by one, with one command to pack and one reply to parse
# per visitor instead of 1 + personas.
# KEYS: record, audience 1..n. ARGV: record JSON, ttl, visitor id, score 1..n or "".
WRITE_VISITOR_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
for i = 2, #KEYS do
  local score = ARGV[i + 2]
  if score == '' then
    redis.call('ZREM', KEYS[i], ARGV[3])
  else
    redis.call('ZADD', KEYS[i], score, ARGV[3])
  end
end
return 1
"""


def encode_record(record: dict[str, Any]) -> bytes:
    """The stored form of ``ps:visitor:{id}``: compact UTF-8 JSON."""
    return orjson.dumps(record)


class RedisStore:
    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "ps:",
        ttl_s: int = 30 * 24 * 3600,
        audience_threshold: float = 0.5,
        reads: RedisMultiplexer | None = None,
    ) -> None:
        self._r: Any = redis  # redis-py typing of decoded responses is too loose to help
        self._reads = reads  # the API's hot reads (get_encoded, personas_live), when given
        self._k = Keys(prefix)
        self._ttl = ttl_s
        self._threshold = audience_threshold
        self._write_visitor = redis.register_script(WRITE_VISITOR_LUA)
        self._lookup = redis.register_script(LOOKUP_LUA)
        self._personas_live = redis.register_script(PERSONAS_LIVE_LUA)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        client = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=5.0,
            socket_connect_timeout=2.0,
            health_check_interval=30,
        )
        reads = RedisMultiplexer(url, timeout_s=5.0, connect_timeout_s=2.0)
        return cls(client, reads=reads, **kwargs)

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except Exception:
            return False

    async def write(self, writes: list[VisitorWrite]) -> None:
        if not writes:
            return
        k, ttl, threshold = self._k, self._ttl, self._threshold
        pipe = self._r.pipeline(transaction=False)
        script = self._write_visitor
        pipe.scripts.add(script)  # loaded (once per Redis) before the pipeline runs
        evalsha = pipe.evalsha
        audience_keys: dict[str, str] = {}
        for w in writes:
            vid = w.visitor_id
            personas = w.record.get("personas", {})
            keys = [k.visitor(vid)]
            args: list[Any] = [encode_record(w.record), ttl, vid]
            for persona, p in personas.items():
                key = audience_keys.get(persona)
                if key is None:
                    key = audience_keys[persona] = k.audience(persona)
                keys.append(key)
                args.append(repr(float(p)) if p >= threshold else "")
            evalsha(script.sha, len(keys), *keys, *args)
            for persona, field, amount in w.kpi:
                pipe.hincrbyfloat(k.kpi(persona), field, amount)
            if w.identity:
                pipe.hset(k.identity(vid), mapping=w.identity)
                pipe.expire(k.identity(vid), ttl)
            user_id = w.record.get("user_id")
            if user_id:
                pipe.set(k.user(user_id), vid, ex=ttl)
            for alias in w.aliases:
                if alias == vid:
                    continue
                pipe.set(k.alias(alias), vid, ex=ttl)
                pipe.sadd(k.aliases(vid), alias)
                pipe.expire(k.aliases(vid), ttl)
                pipe.delete(k.visitor(alias), k.identity(alias))
                for persona in w.record.get("personas", {}):
                    pipe.zrem(k.audience(persona), alias)
        await pipe.execute()

    async def resolve(self, any_id: str) -> str | None:
        k = self._k
        pipe = self._r.pipeline(transaction=False)
        pipe.exists(k.visitor(any_id))
        pipe.get(k.alias(any_id))
        pipe.get(k.user(any_id))
        exists, alias, user = await pipe.execute()
        if exists:
            return any_id
        return alias or user or None

    async def get(self, visitor_id: str) -> dict[str, Any] | None:
        raw = await self.get_encoded(visitor_id)
        return orjson.loads(raw) if raw else None

    async def get_encoded(self, visitor_id: str) -> str | None:
        """The stored lookup JSON, following aliases and user ids: one round trip."""
        keys, args = lookup_keys(self._k, visitor_id)
        if self._reads is not None:
            raw = await self._reads.evalsha(LOOKUP_LUA, self._lookup.sha, keys, args)
            return raw.decode() if raw else None
        raw = await self._lookup(keys=keys, args=args)
        return str(raw) if raw else None

    async def personas_live(self, personas: list[str]) -> list[tuple[int, dict[str, float]]]:
        """(audience size, KPI counters) of each persona: one round trip for all."""
        if not personas:
            return []
        keys = personas_live_keys(self._k, personas)
        if self._reads is not None:
            flat = await self._reads.evalsha(PERSONAS_LIVE_LUA, self._personas_live.sha, keys, [])
        else:
            flat = await self._personas_live(keys=keys)
        out = []
        for i in range(0, len(flat), 2):
            pairs = [p.decode() if isinstance(p, bytes) else p for p in flat[i + 1]]
            kpi = {str(pairs[j]): float(pairs[j + 1]) for j in range(0, len(pairs), 2)}
            out.append((int(flat[i]), kpi))
        return out

    async def identity(self, visitor_id: str) -> dict[str, str]:
        return dict(await self._r.hgetall(self._k.identity(visitor_id)))

    async def delete(self, visitor_id: str) -> bool:
        k = self._k
        canonical = await self.resolve(visitor_id) or visitor_id
        raw = await self._r.get(k.visitor(canonical))
        record = json.loads(raw) if raw else {}
        aliases = set(await self._r.smembers(k.aliases(canonical)))
        ids = {canonical, visitor_id, *aliases}
        audience_keys = [key async for key in self._r.scan_iter(match=k.audience_pattern())]
        pipe = self._r.pipeline(transaction=False)
        for i in ids:
            pipe.delete(k.visitor(i), k.identity(i), k.alias(i), k.aliases(i))
            for key in audience_keys:
                pipe.zrem(key, i)
        if record.get("user_id"):
            pipe.delete(k.user(record["user_id"]))
        await pipe.execute()
        return bool(record) or bool(aliases)

    async def audience(
        self, persona: str, min_probability: float, limit: int, offset: int = 0
    ) -> list[tuple[str, float]]:
        rows = await self._r.zrevrangebyscore(
            self._k.audience(persona),
            "+inf",
            min_probability,
            start=offset,
            num=limit,
            withscores=True,
        )
        return [(str(m), float(s)) for m, s in rows]

    async def audience_size(self, persona: str) -> int:
        return int(await self._r.zcard(self._k.audience(persona)))

    async def kpi(self, persona: str) -> dict[str, float]:
        raw = await self._r.hgetall(self._k.kpi(persona))
        return {str(f): float(v) for f, v in raw.items()}

    async def sweep_audiences(self, personas: list[str]) -> int:
        removed = 0
        for persona in personas:
            key = self._k.audience(persona)
            cursor = 0
            while True:
                cursor, rows = await self._r.zscan(key, cursor, count=1000)
                members = [m for m, _ in rows]
                if members:
                    pipe = self._r.pipeline(transaction=False)
                    for m in members:
                        pipe.exists(self._k.visitor(m))
                    gone = [
                        m
                        for m, alive in zip(members, await pipe.execute(), strict=True)
                        if not alive
                    ]
                    if gone:
                        removed += int(await self._r.zrem(key, *gone))
                if cursor == 0:
                    break
        return removed

    async def put_worker_stats(self, worker: str, stats: dict[str, float], ttl_s: int) -> None:
        key = self._k.worker_stats(worker)
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={k: repr(float(v)) for k, v in stats.items()})
        pipe.expire(key, ttl_s)
        pipe.zadd(self._k.worker_stats_index(), {worker: time.time() + ttl_s})
        await pipe.execute()

    async def _reporting(self, index: str) -> list[str]:
        """Workers whose report has not expired (expired ones leave the index)."""
        now = time.time()
        pipe = self._r.pipeline(transaction=False)
        pipe.zremrangebyscore(index, "-inf", now)
        pipe.zrange(index, 0, -1)
        _, workers = await pipe.execute()
        return [str(w) for w in workers]

    async def worker_stats(self) -> dict[str, dict[str, float]]:
        workers = await self._reporting(self._k.worker_stats_index())
        pipe = self._r.pipeline(transaction=False)
        for worker in workers:
            pipe.hgetall(self._k.worker_stats(worker))
        rows = await pipe.execute() if workers else []
        return {
            worker: {str(k): float(v) for k, v in raw.items()}
            for worker, raw in zip(workers, rows, strict=True)
            if raw
        }

    async def put_discovery(
        self, worker: str, candidates: list[dict[str, Any]], ttl_s: int
    ) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._k.discovery(worker), json.dumps(candidates), ex=ttl_s)
        pipe.zadd(self._k.discovery_index(), {worker: time.time() + ttl_s})
        await pipe.execute()

    async def discovery(self) -> dict[str, list[dict[str, Any]]]:
        workers = await self._reporting(self._k.discovery_index())
        raws = await self._r.mget([self._k.discovery(w) for w in workers]) if workers else []
        return {w: json.loads(raw) for w, raw in zip(workers, raws, strict=True) if raw}

    async def close(self) -> None:
        if self._reads is not None:
            await self._reads.close()
        await self._r.aclose()
