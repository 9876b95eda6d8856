"""In-process implementation of the store, for unit tests and the faust test context."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import orjson

from stream_app.store.base import VisitorWrite


class MemoryStore:
    def __init__(self, *, audience_threshold: float = 0.5, **_: Any) -> None:
        self._threshold = audience_threshold
        self.visitors: dict[str, dict[str, Any]] = {}
        self.audiences: dict[str, dict[str, float]] = defaultdict(dict)
        self.kpis: dict[str, dict[str, float]] = defaultdict(dict)
        self.identities: dict[str, dict[str, str]] = {}
        self.users: dict[str, str] = {}
        self.alias_of: dict[str, str] = {}
        self.aliases_by: dict[str, set[str]] = defaultdict(set)
        self.stats: dict[str, dict[str, float]] = {}
        self.candidates: dict[str, list[dict[str, Any]]] = {}

    async def ping(self) -> bool:
        return True

    async def write(self, writes: list[VisitorWrite]) -> None:
        for w in writes:
            vid = w.visitor_id
            self.visitors[vid] = copy.deepcopy(w.record)
            for persona, p in w.record.get("personas", {}).items():
                if p >= self._threshold:
                    self.audiences[persona][vid] = p
                else:
                    self.audiences[persona].pop(vid, None)
            for persona, field, amount in w.kpi:
                bucket = self.kpis[persona]
                bucket[field] = bucket.get(field, 0.0) + amount
            if w.identity:
                self.identities.setdefault(vid, {}).update(w.identity)
            if w.record.get("user_id"):
                self.users[w.record["user_id"]] = vid
            for alias in w.aliases:
                if alias == vid:
                    continue
                self.alias_of[alias] = vid
                self.aliases_by[vid].add(alias)
                self.visitors.pop(alias, None)
                self.identities.pop(alias, None)
                for members in self.audiences.values():
                    members.pop(alias, None)

    async def resolve(self, any_id: str) -> str | None:
        if any_id in self.visitors:
            return any_id
        return self.alias_of.get(any_id) or self.users.get(any_id)

    async def get(self, visitor_id: str) -> dict[str, Any] | None:
        canonical = await self.resolve(visitor_id)
        record = self.visitors.get(canonical) if canonical else None
        return copy.deepcopy(record) if record is not None else None

    async def get_encoded(self, visitor_id: str) -> str | None:
        record = await self.get(visitor_id)
        return orjson.dumps(record).decode() if record is not None else None

    async def personas_live(self, personas: list[str]) -> list[tuple[int, dict[str, float]]]:
        return [(len(self.audiences.get(p, {})), dict(self.kpis.get(p, {}))) for p in personas]

    async def identity(self, visitor_id: str) -> dict[str, str]:
        return dict(self.identities.get(visitor_id, {}))

    async def delete(self, visitor_id: str) -> bool:
        canonical = await self.resolve(visitor_id) or visitor_id
        record = self.visitors.pop(canonical, None)
        aliases = self.aliases_by.pop(canonical, set())
        for i in {canonical, visitor_id, *aliases}:
            self.visitors.pop(i, None)
            self.identities.pop(i, None)
            self.alias_of.pop(i, None)
            for members in self.audiences.values():
                members.pop(i, None)
        if record and record.get("user_id"):
            self.users.pop(record["user_id"], None)
        return record is not None or bool(aliases)

    async def audience(
        self, persona: str, min_probability: float, limit: int, offset: int = 0
    ) -> list[tuple[str, float]]:
        rows = [(m, p) for m, p in self.audiences.get(persona, {}).items() if p >= min_probability]
        rows.sort(key=lambda r: (-r[1], r[0]))
        return rows[offset : offset + limit]

    async def audience_size(self, persona: str) -> int:
        return len(self.audiences.get(persona, {}))

    async def kpi(self, persona: str) -> dict[str, float]:
        return dict(self.kpis.get(persona, {}))

    async def sweep_audiences(self, personas: list[str]) -> int:
        removed = 0
        for persona in personas:
            members = self.audiences.get(persona, {})
            for m in [m for m in members if m not in self.visitors]:
                del members[m]
                removed += 1
        return removed

    async def put_worker_stats(self, worker: str, stats: dict[str, float], ttl_s: int) -> None:
        self.stats[worker] = {k: float(v) for k, v in stats.items()}

    async def worker_stats(self) -> dict[str, dict[str, float]]:
        return {w: dict(s) for w, s in self.stats.items()}

    async def put_discovery(
        self, worker: str, candidates: list[dict[str, Any]], ttl_s: int
    ) -> None:
        self.candidates[worker] = copy.deepcopy(candidates)

    async def discovery(self) -> dict[str, list[dict[str, Any]]]:
        return copy.deepcopy(self.candidates)

    async def close(self) -> None:
        return None
