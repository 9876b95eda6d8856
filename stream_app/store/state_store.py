"""The durable home of the visitor states: Redis, written with a compare-and-set.

One key per visitor, ``{prefix}state:{digest of the id}``, holds a header line and the
encoded state (opaque here: a :class:`StateCodec` encodes it; orjson of a dict by default,
the worker's typed state in the worker):

    <events offset>,<control offset>\\t<assigned top persona>\\n<encoded state>

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

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from stream_app.store.base import VisitorWrite
from stream_app.store.keys import Keys

NO_OFFSET = -1
Offsets = tuple[int, int]  # (events topic, control topic): last applied offsets

# One call per batch: ARGV[1] is a JSON array with one entry per visitor, packed by orjson
# (in C) instead of one command of ~40 arguments per visitor packed by redis-py (in
# Python: 15% of the worker's CPU). Each entry:
#   [state key, mix key, expiry key, base version, new header, state JSON ('' = delete),
#    state ttl (0 = never expires), ttl of the other keys, visitor id, expire at ('' = none),
#    [[op, key, value...], ...]]
# and gets a reply: 1 applied, 2 already applied (the same offsets), 0 refused. The script
# runs atomically, so the AOF holds all of a batch's visitors or none. The keys of the ops
# are not declared (standalone Redis; a cluster would need hash tags per visitor).
COMMIT_LUA = """
local commits = cjson.decode(ARGV[1])
local replies = {}
for n, c in ipairs(commits) do
  local skey, base, header, blob, sttl, ttl = c[1], c[4], c[5], c[6], c[7], c[8]
  local cur = redis.call('GET', skey)
  local ver, top = '', ''
  if cur then
    local head = string.match(cur, '^[^\\n]*')
    ver, top = string.match(head, '^([^\\t]*)\\t?(.*)$')
  end
  local newver, newtop = string.match(header, '^([^\\t]*)\\t?(.*)$')
  if ver == newver then
    replies[n] = 2
  elseif ver ~= base then
    replies[n] = 0
  else
    replies[n] = 1
    if blob == '' then
      redis.call('DEL', skey)
    elseif sttl == 0 then
      redis.call('SET', skey, header .. '\\n' .. blob)
    else
      redis.call('SET', skey, header .. '\\n' .. blob, 'EX', sttl)
    end
    if top ~= newtop then
      if top ~= '' then redis.call('HINCRBY', c[2], top, -1) end
      if newtop ~= '' then redis.call('HINCRBY', c[2], newtop, 1) end
    end
    if c[10] == '' then
      redis.call('ZREM', c[3], c[9])
    else
      redis.call('ZADD', c[3], c[10], c[9])
    end
    for _, o in ipairs(c[11]) do
      local op, k = o[1], o[2]
      if op == 'S' then
        redis.call('SET', k, o[3], 'EX', ttl)
      elseif op == 'Z' then
        redis.call('ZADD', k, o[3], o[4])
      elseif op == 'R' then
        redis.call('ZREM', k, o[3])
      elseif op == 'H' then
        redis.call('HINCRBYFLOAT', k, o[3], o[4])
      elseif op == 'M' then
        redis.call('HSET', k, o[3], o[4]); redis.call('EXPIRE', k, ttl)
      elseif op == 'A' then
        redis.call('SADD', k, o[3]); redis.call('EXPIRE', k, ttl)
      elseif op == 'D' then
        redis.call('DEL', k)
      else
        return redis.error_reply('unknown op ' .. tostring(op))
      end
    end
  end
end
-- The partitions' next offsets, in the same atomic step (one round trip per batch):
-- only if no visitor was refused and Redis is still the instance ARGV[3] (see
-- OFFSETS_LUA). Reply element #commits + 1: 1 stored, 0 Redis restarted, -1 refused.
if ARGV[2] then
  local stored = -1
  local refused = false
  for _, r in ipairs(replies) do if r == 0 then refused = true end end
  if not refused then
    local info = redis.call('INFO', 'server')
    if string.match(info, 'run_id:(%w+)') == ARGV[3] then
      for i = 4, #ARGV, 2 do redis.call('HSET', ARGV[2], ARGV[i], ARGV[i + 1]) end
      stored = 1
    else
      stored = 0
    end
  end
  replies[#replies + 1] = stored
end
return replies
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


def _json_decode(raw: bytes, visitor_id: str) -> Any:
    return orjson.loads(raw)


@dataclass(frozen=True)
class StateCodec:
    """How a state is stored: bytes of valid UTF-8 (the commit script carries them as a
    JSON string); decoded knowing the visitor id it was stored under."""

    encode: Callable[[Any], bytes] = orjson.dumps
    decode: Callable[[bytes, str], Any] = _json_decode


JSON_CODEC = StateCodec()


@dataclass(frozen=True)
class StoredState:
    """A visitor's state as read: its offsets and its (decoded) state, or none."""

    offsets: Offsets = (NO_OFFSET, NO_OFFSET)
    state: Any = None  # decoded by the store's codec
    top: str = ""
    exists: bool = False

    @property
    def version(self) -> str:
        """What the commit script compares with ('' when there is no stored state)."""
        return version(self.offsets) if self.exists else ""


def encode_state(offsets: Offsets, top: str, state: Any, codec: StateCodec = JSON_CODEC) -> bytes:
    """The one stored encoding of a visitor state (header line + the encoded state)."""
    return f"{version(offsets)}\t{top}\n".encode() + codec.encode(state)


def decode_state(
    raw: bytes | None, codec: StateCodec = JSON_CODEC, visitor_id: str = ""
) -> StoredState:
    if not raw:
        return StoredState()
    head, _, body = raw.partition(b"\n")
    ver, _, top = head.decode().partition("\t")
    state = codec.decode(body, visitor_id) if body else None
    return StoredState(parse_version(ver), state, top, True)


@dataclass
class VisitorCommit:
    """One visitor's effects of one batch, applied by :data:`COMMIT_LUA` or not at all."""

    visitor_id: str
    partition: int
    base: StoredState
    offsets: Offsets
    state: Any  # None: delete the state key
    top: str = ""  # assigned top persona after the batch ('' = not a visitor: a marker)
    write: VisitorWrite | None = None  # the lookup record and what goes with it
    forget: bool = False  # delete record, audiences, identity, aliases, user link
    persist: bool = False  # the state never expires (an opt-out marker)
    expire_at: float | None = None  # when its last activity passes the TTL
    user_id: str | None = None  # the user the stored state was linked to (a forget unlinks)


@functools.lru_cache(maxsize=1 << 16)
def state_digest(visitor_id: str) -> str:
    """96 bits of BLAKE2b of the visitor id, in hex (cached: a batch reads and writes the
    same visitors, and active visitors come back batch after batch)."""
    return hashlib.blake2b(visitor_id.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class PackedCommits:
    """A batch's commits serialised for :data:`COMMIT_LUA`."""

    visitor_ids: tuple[str, ...]
    payload: bytes


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
        codec: StateCodec = JSON_CODEC,
    ) -> None:
        self._r: Any = redis
        self.codec = codec
        self.keys = Keys(prefix)
        self.prefix = prefix
        self.group = group
        self.events_topic = events_topic
        self.ttl = ttl_s
        self.threshold = audience_threshold
        self.personas = list(personas)
        self._audience_keys: dict[str, str] = {}
        self._commit = redis.register_script(COMMIT_LUA)
        self._expire = redis.register_script(EXPIRE_LUA)
        self._write_offsets = redis.register_script(OFFSETS_LUA)
        self._read_offsets = redis.register_script(READ_OFFSETS_LUA)

    # -- key names (additions documented in README, "Redis keys") -------------------------
    def state_key(self, visitor_id: str) -> str:
        """Named by a digest of the id: the marker a DELETE leaves (to refuse events sent
        before it) must not keep the id in a key name, and it is shorter than a UUID."""
        return f"{self.prefix}state:{state_digest(visitor_id)}"

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
        codec = self.codec
        return {v: decode_state(raw, codec, v) for v, raw in zip(ids, raws, strict=True)}

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
    def _entry(self, c: VisitorCommit) -> list[Any]:
        """One visitor's commit as the batch script reads it (see COMMIT_LUA)."""
        k, vid = self.keys, c.visitor_id
        ops: list[list[Any]] = []
        if c.forget:
            ops += [["D", k.visitor(vid)], ["D", k.identity(vid)], ["D", k.aliases(vid)]]
            ops.append(["D", k.alias(vid)])
            ops += [["R", k.audience(persona), vid] for persona in self.personas]
            if c.user_id:
                ops.append(["D", k.user(c.user_id)])
        w = c.write
        if w is not None:
            record = w.record
            ops.append(["S", k.visitor(vid), orjson.dumps(record).decode()])
            personas = record.get("personas", {})
            audience, threshold = self._audience_keys, self.threshold
            for persona, p in personas.items():
                key = audience.get(persona) or audience.setdefault(persona, k.audience(persona))
                if p >= threshold:
                    ops.append(["Z", key, repr(float(p)), vid])
                else:
                    ops.append(["R", key, vid])
            for persona, name, amount in w.kpi:
                ops.append(["H", k.kpi(persona), name, repr(float(amount))])
            for name, value in w.identity.items():
                ops.append(["M", k.identity(vid), name, value])
            if record.get("user_id"):
                ops.append(["S", k.user(str(record["user_id"])), vid])
            for alias in w.aliases:
                if alias == vid:
                    continue
                ops += [["S", k.alias(alias), vid], ["A", k.aliases(vid), alias]]
                ops += [["D", k.visitor(alias)], ["D", k.identity(alias)]]
                ops += [["R", k.audience(persona), alias] for persona in personas]
        return [
            self.state_key(vid),
            self.mix_key(c.partition),
            self.expiry_key(c.partition),
            c.base.version,
            f"{version(c.offsets)}\t{c.top}",
            self.codec.encode(c.state).decode() if c.state is not None else "",
            0 if c.persist else self.ttl,
            self.ttl,
            vid,
            "" if c.expire_at is None else repr(float(c.expire_at)),
            ops,
        ]

    async def commit(self, commits: list[VisitorCommit]) -> dict[str, int]:
        """Apply each visitor's commit (compare-and-set) in one script call for the batch;
        returns visitor id -> APPLIED, SAME or REFUSED."""
        return await self.commit_packed(self.pack(commits))

    def pack(self, commits: list[VisitorCommit]) -> PackedCommits:
        """The commit script's argument for ``commits`` (the states encoded now)."""
        if not commits:
            return PackedCommits((), b"")
        packed = orjson.dumps([self._entry(c) for c in commits])
        return PackedCommits(tuple(c.visitor_id for c in commits), packed)

    async def commit_packed(self, packed: PackedCommits) -> dict[str, int]:
        """:meth:`commit` of commits packed already by :meth:`pack`."""
        if not packed.visitor_ids:
            return {}
        replies = await self._commit(keys=[], args=[packed.payload])
        return {vid: int(r) for vid, r in zip(packed.visitor_ids, replies, strict=True)}

    async def commit_with_offsets(
        self, packed: PackedCommits, offsets: Mapping[tuple[str, int], int], run_id: str
    ) -> tuple[dict[str, int], bool | None]:
        """:meth:`commit_packed`, then :meth:`write_offsets` in the same script call (one
        round trip): the offsets are stored only if no visitor was refused. Returns the
        replies and True (offsets stored), False (Redis restarted since ``run_id``) or
        None (a visitor was refused: offsets not stored)."""
        if not packed.visitor_ids:
            stored = await self.write_offsets(offsets, run_id)
            return {}, stored
        args: list[Any] = [packed.payload, self.offsets_key(), run_id]
        for (t, p), o in offsets.items():
            args.extend((f"{t}:{p}", int(o)))
        replies = await self._commit(keys=[], args=args)
        out = {vid: int(r) for vid, r in zip(packed.visitor_ids, replies, strict=False)}
        flag = int(replies[len(packed.visitor_ids)])
        return out, None if flag < 0 else bool(flag)

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
