"""One Redis round trip per lookup: alias / user resolution and the record in one script.

``GET /v1/visitors/{id}`` answers for a visitor id, a merged visitor id (``ps:alias:``) or a
user id (``ps:user:``); resolving first and reading second took two round trips (three
commands pipelined, then a GET). This script does the same steps inside Redis and returns
the stored lookup JSON as it is (the API sends those bytes without decoding them).

KEYS: ``ps:visitor:{id}``, ``ps:alias:{id}``, ``ps:user:{id}``. ARGV: the visitor key prefix
(``ps:visitor:``), to which the resolved canonical id is appended. The canonical key is
built inside the script, so this needs one Redis (not a cluster; this project runs one).
"""

from __future__ import annotations

from stream_app.store.keys import Keys

LOOKUP_LUA = """
local record = redis.call('GET', KEYS[1])
if record then return record end
local canonical = redis.call('GET', KEYS[2])
if not canonical then canonical = redis.call('GET', KEYS[3]) end
if not canonical then return false end
return redis.call('GET', ARGV[1] .. canonical)
"""

# Audience size and KPI counters of every persona in one script, for /v1/personas and
# /v1/stats: a flat reply [zcard_1, {field, value, ...}_1, zcard_2, ...].
# KEYS: audience_1, kpi_1, audience_2, kpi_2, ...
PERSONAS_LIVE_LUA = """
local out = {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = redis.call('ZCARD', KEYS[i])
  out[#out + 1] = redis.call('HGETALL', KEYS[i + 1])
end
return out
"""


def lookup_keys(keys: Keys, any_id: str) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of :data:`LOOKUP_LUA` for ``any_id``."""
    return [keys.visitor(any_id), keys.alias(any_id), keys.user(any_id)], [keys.visitor("")]


def personas_live_keys(keys: Keys, personas: list[str]) -> list[str]:
    out: list[str] = []
    for persona in personas:
        out += [keys.audience(persona), keys.kpi(persona)]
    return out
