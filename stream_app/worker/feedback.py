"""Satisfaction signals: the visitor's latest NPS/CSAT/CES and per persona x phase KPI counters.

``ps:kpi:{persona}`` is a hash of counters; every counter exists overall (``nps_promoters``)
and per journey phase (``decision:nps_promoters``). Scores are derived on read by
:func:`summarise`: NPS = % promoters (9-10) - % detractors (0-6); CSAT and CES are means.
"""

from __future__ import annotations

from typing import Any


def nps_bucket(score: int) -> str:
    if score >= 9:
        return "nps_promoters"
    if score >= 7:
        return "nps_passives"
    return "nps_detractors"


def kpi_increments(
    kind: str, score: int, persona: str | None, phase: str | None
) -> tuple[tuple[str, str, float], ...]:
    """Counters to add for one feedback event, attributed to the visitor's top persona."""
    if persona is None:
        return ()
    if kind == "nps":
        fields = [(nps_bucket(score), 1.0), ("nps_count", 1.0)]
    elif kind in ("csat", "ces"):
        fields = [(f"{kind}_sum", float(score)), (f"{kind}_count", 1.0)]
    else:
        raise ValueError(f"unknown feedback kind {kind!r}")
    out = [(persona, f, v) for f, v in fields]
    if phase:
        out += [(persona, f"{phase}:{f}", v) for f, v in fields]
    return tuple(out)


def summarise(counters: dict[str, float], phase: str | None = None) -> dict[str, Any]:
    """NPS, CSAT and CES with their counts from a ``ps:kpi`` hash (optionally for one phase)."""
    p = f"{phase}:" if phase else ""

    def get(name: str) -> float:
        return float(counters.get(p + name, 0.0))

    n = get("nps_count")
    csat_n, ces_n = get("csat_count"), get("ces_count")
    return {
        "nps": round(100.0 * (get("nps_promoters") - get("nps_detractors")) / n, 1) if n else None,
        "nps_responses": int(n),
        "csat": round(get("csat_sum") / csat_n, 3) if csat_n else None,
        "csat_responses": int(csat_n),
        "ces": round(get("ces_sum") / ces_n, 3) if ces_n else None,
        "ces_responses": int(ces_n),
    }


def phases_in(counters: dict[str, float]) -> list[str]:
    return sorted({k.split(":", 1)[0] for k in counters if ":" in k})
