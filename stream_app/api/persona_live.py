"""Live numbers of the personas, shared by ``/v1/personas`` and ``/v1/stats``."""

from __future__ import annotations

from typing import Any

from stream_app.store import VisitorStore
from stream_app.worker.feedback import phases_in, summarise


def summarise_live(size: int, counters: dict[str, float]) -> dict[str, Any]:
    """Audience size and NPS/CSAT/CES, overall and per journey phase."""
    return {
        "audience_size": size,
        "kpi": summarise(counters),
        "kpi_by_phase": {ph: summarise(counters, ph) for ph in phases_in(counters)},
    }


async def personas_live(store: VisitorStore, persona_ids: list[str]) -> list[dict[str, Any]]:
    """:func:`summarise_live` of every persona from one store round trip."""
    return [summarise_live(size, kpi) for size, kpi in await store.personas_live(persona_ids)]
