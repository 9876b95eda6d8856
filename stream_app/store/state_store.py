"""The durable home of the visitor states: Redis, written with a compare-and-set.

One key per visitor, ``{prefix}state:{digest of the id}``, holds a header line and the state's JSON:

    <events offset>,<control offset>\\t<assigned top persona>\\n<orjson of the state>

The offsets are those of the last message of each topic applied to the state (``-1``:
none yet). A batch writes a visitor only through :data:`COMMIT_LUA`, which checks that
the stored offsets are still the ones the batch read (its *base*):

- stored == base: apply everything (state, record, audiences, KPIs, identity, aliases)
  atomically, return 1;
- stored == the batch's new offsets: this very batch was applied already (a retry after
  a lost reply, a replay): change nothing, return 2 (idempotent);
- anything else: someone applied newer messages since the read (a zombie worker that
  lost its partitions, or the new owner): change nothing, return 0 (refused). The caller
  re-reads and replays; messages at or below the stored offsets are skipped.

So a replay, a rebalance or a zombie never doubles a count and never rolls a state back.
The consumer offsets of every partition live in ``{prefix}offsets:{group}`` and are
written after the batch's visitors (in the AOF's order): whatever prefix of the AOF
survives a crash, the offsets never claim a message whose visitor write is missing.

Expiry: ``{prefix}expiry:{topic}:{partition}`` is a sorted set of visitor -> the time its
last activity passes the TTL; the worker owning the partition sweeps it
(:data:`EXPIRE_LUA`, again guarded: a visitor written since is left alone). Every key also
carries the TTL from its last write as a backstop. ``{prefix}mix:{topic}:{partition}`` counts
the visitors of a partition by assigned top persona (the persona mix gauge).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_app.store.base import VisitorWrite
from stream_app.store.keys import Keys

NO_OFFSET = -1
Offsets = tuple[int, int]  # (events topic, control topic): last applied offsets

COMMIT_LUA = """
local cur = redis.call('GET', KEYS[1])
local ver, top = '', ''
if cur then
  local head = string.match(cur, '^[^\\n]*')
  ver, top = string.match(head, '^([^\\t]*)\\t?(.*)$')
end
local newver, newtop = string.match(ARGV[2], '^([^\\t]*)\\t?(.*)$')
if ver == newver then return 2 end
if ver ~= ARGV[1] then return 0 end
local ttl = ARGV[5]
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
elseif ARGV[4] == '0' then
  redis.call('SET', KEYS[1], ARGV[2] .. '\\n' .. ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2] .. '\\n' .. ARGV[3], 'EX', ARGV[4])
end
if top ~= newtop then
  if top ~= '' then redis.call('HINCRBY', KEYS[2], top, -1) end
  if newtop ~= '' then redis.call('HINCRBY', KEYS[2], newtop, 1) end
end
if ARGV[7] == '' then
  redis.call('ZREM', KEYS[3], ARGV[6])
else
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
end
local i = 8
while i <= #ARGV do
  local op = ARGV[i]
  local k = KEYS[tonumber(ARGV[i + 1])]
  if op == 'S' then
    redis.call('SET', k, ARGV[i + 2], 'EX', ttl); i = i + 3
  elseif op == 'Z' then
    redis.call('ZADD', k, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'R' then
    redis.call('ZREM', k, ARGV[i + 2]); i = i + 3
  elseif op == 'H' then
    redis.call('HINCRBYFLOAT', k, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'M' then
    redis.call('HSET', k, ARGV[i + 2], ARGV[i + 3]); redis.call('EXPIRE', k, ttl); i = i + 4
  elseif op == 'A' then
    redis.call('SADD', k, ARGV[i + 2]); redis.call('EXPIRE', k, ttl); i = i + 3
  elseif op == 'D' then
    redis.call('DEL', k); i = i + 2
  else
    return redis.error_reply('unknown op ' .. op)
  end
end
return 1
"""

# KEYS: state, mix, expiry zset, record, identity, audience 1..n. ARGV: now, visitor id.
EXPIRE_LUA = """
local due = redis.call('ZSCORE', KEYS[3], ARGV[2])
if not due then return 0 end
if tonumber(due) > tonumber(ARGV[1]) then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur then
  local head = string.match(cur, '^[^\\n]*')
  local _, top = string.match(head, '^([^\\t]*)\\t?(.*)$')
  if top ~= '' then redis.call('HINCRBY', KEYS[2], top, -1) end
end
redis.call('DEL', KEYS[1], KEYS[4], KEYS[5])
for i = 6, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
redis.call('ZREM', KEYS[3], ARGV[2])
if cur then return 1 end
return 0
"""

# The partitions' next offsets, written only to the Redis instance (run_id) that held the
# states they count on: a Redis that restarted may have lost the last second of writes
# (appendfsync everysec), and then the worker must go back to the offsets it kept.
# KEYS: offsets hash. ARGV: run_id, then field, offset pairs.
OFFSETS_LUA = """
local info = redis.call('INFO', 'server')
if string.match(info, 'run_id:(%w+)') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS: offsets hash. Returns {run_id, field1, offset1, ...} read at one instant.
READ_OFFSETS_LUA = """
local info = redis.call('INFO', 'server')
local out = {string.match(info, 'run_id:(%w+)')}
local kv = redis.call('HGETALL', KEYS[1])
for i = 1, #kv do out[#out + 1] = kv[i] end
return out
"""

APPLIED, SAME, REFUSED = 1, 2, 0


def version(offsets: Offsets) -> str:
    return f"{offsets[0]},{offsets[1]}"


def parse_version(text: str) -> Offsets:
    try:
        e, c = text.split(",")
        return int(e), int(c)
    except ValueError:
        return NO_OFFSET, NO_OFFSET


@dataclass(frozen=True)
class StoredState:
    """A visitor's state as read: its offsets and its (decoded) state, or none."""

    offsets: Offsets = (NO_OFFSET, NO_OFFSET)
    state: dict[str, Any] | None = None
    top: str = ""
    exists: bool = False

    @property
    def version(self) -> str:
        """What the commit script compares with ('' when there is no stored state)."""
        return version(self.offsets) if self.exists else ""


def encode_state(offsets: Offsets, top: str, state: dict[str, Any]) -> bytes:
    """The one stored encoding of a visitor state (header line + orjson)."""
    return f"{version(offsets)}\t{top}\n".encode() + orjson.dumps(state)


def decode_state(raw: bytes | None) -> StoredState:
    if not raw:
        return StoredState()
    head, _, body = raw.partition(b"\n")
    ver, _, top = head.decode().partition("\t")
    return StoredState(parse_version(ver), orjson.loads(body) if body else None, top, True)


@dataclass
class VisitorCommit:
    """One visitor's effects of one batch, applied by :data:`COMMIT_LUA` or not at all."""

    visitor_id: str
    partition: int
    base: StoredState
    offsets: Offsets
    state: dict[str, Any] | None  # None: delete the state key
    top: str = ""  # assigned top persona after the batch ('' = not a visitor: a marker)
    write: VisitorWrite | None = None  # the lookup record and what goes with it
    forget: bool = False  # delete record, audiences, identity, aliases, user link
    persist: bool = False  # the state never expires (an opt-out marker)
    expire_at: float | None = None  # when its last activity passes the TTL


@dataclass
class _Script:
    keys: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def key(self, name: str) -> int:
        at = self.index.get(name)
        if at is None:
            self.keys.append(name)
            at = self.index[name] = len(self.keys)
        return at

    def op(self, code: str, key: str, *values: Any) -> None:
        self.args.extend((code, self.key(key), *values))


class StateStore:
    """Visitor states, consumer offsets and expiry in Redis (see the module docstring)."""

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "ps:",
        group: str = "persona-stream",
        events_topic: str = "persona.events",
        ttl_s: int = 30 * 24 * 3600,
        audience_threshold: float = 0.5,
        personas: Iterable[str] = (),
    ) -> None:
        self._r: Any = redis
        self.keys = Keys(prefix)
        self.prefix = prefix
        self.group = group
        self.events_topic = events_topic
        self.ttl = ttl_s
        self.threshold = audience_threshold
        self.personas = list(personas)
        self._commit = redis.register_script(COMMIT_LUA)
        self._expire = redis.register_script(EXPIRE_LUA)
        self._write_offsets = redis.register_script(OFFSETS_LUA)
        self._read_offsets = redis.register_script(READ_OFFSETS_LUA)

    # -- key names (additions documented in README, "Redis keys") -------------------------
    def state_key(self, visitor_id: str) -> str:
        """Named by a digest of the id: the marker a DELETE leaves (to refuse events sent
        before it) must not keep the id in a key name, and it is shorter than a UUID."""
        digest = hashlib.blake2b(visitor_id.encode(), digest_size=12).hexdigest()
        return f"{self.prefix}state:{digest}"

    def offsets_key(self) -> str:
        return f"{self.prefix}offsets:{self.group}"

    def mix_key(self, partition: int) -> str:
        return f"{self.prefix}mix:{self.events_topic}:{partition}"

    def expiry_key(self, partition: int) -> str:
        return f"{self.prefix}expiry:{self.events_topic}:{partition}"

    # -- reads ----------------------------------------------------------------------------
    async def read(self, visitor_ids: Iterable[str]) -> dict[str, StoredState]:
        """The stored states of ``visitor_ids`` in one round trip (MGET)."""
        ids = list(dict.fromkeys(visitor_ids))
        if not ids:
            return {}
        raws = await self._r.mget([self.state_key(v) for v in ids])
        return {v: decode_state(raw) for v, raw in zip(ids, raws, strict=True)}

    async def read_offsets(self) -> tuple[str, dict[tuple[str, int], int]]:
        """The Redis instance's run_id and the next offset to read of every partition a
        batch was committed for, read atomically."""
        raw = await self._read_offsets(keys=[self.offsets_key()])
        run_id = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
        out: dict[tuple[str, int], int] = {}
        for name, value in zip(raw[1::2], raw[2::2], strict=True):
            text = name.decode() if isinstance(name, bytes) else str(name)
            topic, _, part = text.rpartition(":")
            out[(topic, int(part))] = int(value)
        return run_id, out

    async def mix(self, partitions: Iterable[int]) -> dict[str, int]:
        """Visitors by assigned top persona over ``partitions``."""
        parts = list(partitions)
        counts = dict.fromkeys(self.personas, 0)
        if not parts:
            return counts
        pipe = self._r.pipeline(transaction=False)
        for p in parts:
            pipe.hgetall(self.mix_key(p))
        for raw in await pipe.execute():
            for name, value in raw.items():
                persona = name.decode() if isinstance(name, bytes) else str(name)
                counts[persona] = counts.get(persona, 0) + int(value)
        return counts

    # -- writes ---------------------------------------------------------------------------
    def _script_for(self, c: VisitorCommit) -> _Script:
        k, s = self.keys, _Script()
        s.key(self.state_key(c.visitor_id))
        s.key(self.mix_key(c.partition))
        s.key(self.expiry_key(c.partition))
        blob = orjson.dumps(c.state) if c.state is not None else b""
        ttl = 0 if c.persist else self.ttl
        expire_at = "" if c.expire_at is None else repr(float(c.expire_at))
        s.args.extend(
            [
                c.base.version,
                f"{version(c.offsets)}\t{c.top}",
                blob,
                ttl,
                self.ttl,
                c.visitor_id,
                expire_at,
            ]
        )
        vid = c.visitor_id
        if c.forget:
            s.op("D", k.visitor(vid))
            s.op("D", k.identity(vid))
            s.op("D", k.aliases(vid))
            s.op("D", k.alias(vid))
            for persona in self.personas:
                s.op("R", k.audience(persona), vid)
            user_id = (c.base.state or {}).get("user_id")
            if user_id:
                s.op("D", k.user(str(user_id)))
        w = c.write
        if w is not None:
            record = w.record
            s.op("S", k.visitor(vid), orjson.dumps(record))
            personas = record.get("personas", {})
            for persona, p in personas.items():
                if p >= self.threshold:
                    s.op("Z", k.audience(persona), repr(float(p)), vid)
                else:
                    s.op("R", k.audience(persona), vid)
            for persona, name, amount in w.kpi:
                s.op("H", k.kpi(persona), name, repr(float(amount)))
            for name, value in w.identity.items():
                s.op("M", k.identity(vid), name, value)
            if record.get("user_id"):
                s.op("S", k.user(str(record["user_id"])), vid)
            for alias in w.aliases:
                if alias == vid:
                    continue
                s.op("S", k.alias(alias), vid)
                s.op("A", k.aliases(vid), alias)
                s.op("D", k.visitor(alias))
                s.op("D", k.identity(alias))
                for persona in personas:
                    s.op("R", k.audience(persona), alias)
        return s

    async def commit(self, commits: list[VisitorCommit]) -> dict[str, int]:
        """Apply each visitor's commit (compare-and-set) in one pipelined round trip;
        returns visitor id -> APPLIED, SAME or REFUSED."""
        if not commits:
            return {}
        pipe = self._r.pipeline(transaction=False)
        pipe.scripts.add(self._commit)  # loaded (once per Redis) before the pipeline runs
        sha = self._commit.sha
        for c in commits:
            s = self._script_for(c)
            pipe.evalsha(sha, len(s.keys), *s.keys, *s.args)
        replies = await pipe.execute()
        return {c.visitor_id: int(r) for c, r in zip(commits, replies, strict=True)}

    async def write_offsets(self, offsets: Mapping[tuple[str, int], int], run_id: str) -> bool:
        """Record the next offset to read per partition (after the batch's commits), only
        if Redis is still the instance ``run_id``; False: it restarted since."""
        if not offsets:
            return True
        args: list[Any] = [run_id]
        for (t, p), o in offsets.items():
            args.extend((f"{t}:{p}", int(o)))
        return bool(await self._write_offsets(keys=[self.offsets_key()], args=args))

    async def expire_due(self, partition: int, now: float, limit: int = 500) -> int:
        """Expire the visitors of ``partition`` idle past the TTL; returns how many."""
        due = await self._r.zrangebyscore(self.expiry_key(partition), "-inf", now, 0, limit)
        if not due:
            return 0
        k = self.keys
        pipe = self._r.pipeline(transaction=False)
        pipe.scripts.add(self._expire)
        for raw in due:
            vid = raw.decode() if isinstance(raw, bytes) else str(raw)
            keys = [
                self.state_key(vid),
                self.mix_key(partition),
                self.expiry_key(partition),
                k.visitor(vid),
                k.identity(vid),
                *(k.audience(p) for p in self.personas),
            ]
            pipe.evalsha(self._expire.sha, len(keys), *keys, repr(float(now)), vid)
        return sum(int(r) for r in await pipe.execute())
