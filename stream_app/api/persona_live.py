"""Live numbers of one persona, shared by ``/v1/personas`` and ``/v1/stats``."""

from __future__ import annotations

from typing import Any

from stream_app.store import VisitorStore
from stream_app.worker.feedback import phases_in, summarise


async def persona_live(store: VisitorStore, persona_id: str) -> dict[str, Any]:
    """Audience size and NPS/CSAT/CES, overall and per journey phase."""
    counters = await store.kpi(persona_id)
    return {
        "audience_size": await store.audience_size(persona_id),
        "kpi": summarise(counters),
        "kpi_by_phase": {ph: summarise(counters, ph) for ph in phases_in(counters)},
    }
