"""The serving store: what the API reads and the worker writes (INTERFACES.md 2.2).

One small interface, two implementations (Redis for production, memory for unit
tests), one contract test suite (tests/stream_app/store/test_contract.py) run
against both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class VisitorWrite:
    """Everything one processed batch changes for one visitor.

    ``record`` is the lookup JSON of INTERFACES.md 2.1. Audience membership is
    derived from ``record["personas"]`` and the store's threshold. ``kpi`` holds
    increments ``(persona, field, amount)`` for ``ps:kpi:{persona}``. ``identity``
    holds hashed identifiers for audience export. ``aliases`` are other ids
    (merged anonymous visitors) that must resolve to this visitor.
    """

    record: dict[str, Any]
    kpi: tuple[tuple[str, str, float], ...] = ()
    identity: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def visitor_id(self) -> str:
        return str(self.record["visitor_id"])


class VisitorStore(Protocol):
    async def ping(self) -> bool: ...

    async def write(self, writes: list[VisitorWrite]) -> None:
        """Apply a batch of writes in one round trip where the backend allows."""

    async def get(self, visitor_id: str) -> dict[str, Any] | None:
        """The visitor's record, following aliases; None when unknown or expired."""

    async def get_encoded(self, visitor_id: str) -> str | None:
        """The record as its stored JSON text (what the lookup sends), following aliases."""

    async def personas_live(self, personas: list[str]) -> list[tuple[int, dict[str, float]]]:
        """(audience size, KPI counters) of each persona, in order, in one round trip."""

    async def resolve(self, any_id: str) -> str | None:
        """Canonical visitor id for a visitor id, an alias or a user id."""

    async def identity(self, visitor_id: str) -> dict[str, str]: ...

    async def delete(self, visitor_id: str) -> bool:
        """Forget the visitor: record, audiences, identity, aliases, user link."""

    async def audience(
        self, persona: str, min_probability: float, limit: int, offset: int = 0
    ) -> list[tuple[str, float]]:
        """Members at or above ``min_probability``, highest first."""

    async def audience_size(self, persona: str) -> int: ...

    async def kpi(self, persona: str) -> dict[str, float]: ...

    async def sweep_audiences(self, personas: list[str]) -> int:
        """Remove audience members whose visitor record has expired; returns how many."""

    async def put_worker_stats(self, worker: str, stats: dict[str, float], ttl_s: int) -> None:
        """Publish one worker's live counters (replaced on each call, expiring)."""

    async def worker_stats(self) -> dict[str, dict[str, float]]:
        """Live counters of every worker that reported recently."""

    async def put_discovery(
        self, worker: str, candidates: list[dict[str, Any]], ttl_s: int
    ) -> None:
        """Publish one worker's candidate new personas (replaced on each call, expiring)."""

    async def discovery(self) -> dict[str, list[dict[str, Any]]]:
        """Candidate new personas reported by each worker."""

    async def close(self) -> None: ...
