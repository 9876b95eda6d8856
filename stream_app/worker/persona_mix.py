"""The persona mix: how many of a worker's visitors have each persona as their top one.

Counted per partition in Redis (``ps:mix:*``, kept by each visitor's commit from
:func:`top_persona` of its old and new state), by the *assigned* top persona (the one
published to retargeting, with hysteresis), so a visitor
counts once however often it is updated. Markers of merged or forgotten visitors are not
visitors. Summed over workers, each persona's count divided by the total is the share
of visitors per top persona.
"""

from __future__ import annotations

from collections.abc import Iterable

from stream_app.worker.visitor_state import VisitorState


def top_persona(state: VisitorState | None) -> str | None:
    if state is None or not state.is_visitor:
        return None
    assigned = state.assigned
    if assigned and assigned.get("top"):
        return str(assigned["top"])
    personas = state.personas
    if personas:
        return str(max(personas, key=lambda p: personas[p]))
    return None


def count_top_personas(
    states: Iterable[VisitorState | None], personas: Iterable[str]
) -> dict[str, int]:
    """Visitors per top persona; every catalog persona is present (0 if nobody)."""
    counts = dict.fromkeys(personas, 0)
    for state in states:
        top = top_persona(state)
        if top is not None:
            counts[top] = counts.get(top, 0) + 1
    return counts
