"""When to tell ad retargeting about a visitor: top-persona changes and audience
threshold crossings, with hysteresis so visitors near a boundary do not flap.

A visitor joins persona P's audience when p(P) >= threshold and leaves it only when
p(P) < threshold - hysteresis. The published top persona changes only when another
persona beats the current one by more than ``hysteresis``.
"""

from __future__ import annotations

from typing import Any


def next_assignment(
    previous: dict[str, Any] | None,
    personas: dict[str, float],
    threshold: float,
    hysteresis: float,
) -> dict[str, Any]:
    prev_top = previous["top"] if previous else None
    prev_members = set(previous["audiences"]) if previous else set()
    best = max(personas, key=lambda p: (personas[p], p))
    top = best
    if prev_top in personas and personas[best] - personas[prev_top] <= hysteresis:
        top = prev_top
    members = set()
    for persona, p in personas.items():
        stay = persona in prev_members and p >= threshold - hysteresis
        if p >= threshold or stay:
            members.add(persona)
    return {"top": top, "audiences": sorted(members)}


def changed(previous: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    return previous is None or previous != current
