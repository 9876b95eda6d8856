"""Live numbers of one persona, shared by ``/v1/personas`` and ``/v1/stats``."""

from __future__ import annotations

import asyncio
from typing import Any

from stream_app.store import VisitorStore
from stream_app.worker.feedback import phases_in, summarise


async def persona_live(store: VisitorStore, persona_id: str) -> dict[str, Any]:
    """Audience size and NPS/CSAT/CES, overall and per journey phase."""
    counters, size = await asyncio.gather(store.kpi(persona_id), store.audience_size(persona_id))
    return {
        "audience_size": size,
        "kpi": summarise(counters),
        "kpi_by_phase": {ph: summarise(counters, ph) for ph in phases_in(counters)},
    }


async def personas_live(store: VisitorStore, persona_ids: list[str]) -> list[dict[str, Any]]:
    """:func:`persona_live` of every persona, concurrently (not one round trip after another)."""
    return list(await asyncio.gather(*(persona_live(store, p) for p in persona_ids)))
