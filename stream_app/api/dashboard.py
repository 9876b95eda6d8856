"""Live dashboard: ``GET /dashboard`` (a self-contained page) and ``GET /v1/stats`` (its data).

Workers publish their live numbers to Redis every 2 s (``ps:stats:worker:*``); the page
polls ``/v1/stats`` and draws the charts itself — nothing is fetched from a CDN.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from models.catalog import Catalog
from stream_app.api.persona_live import personas_live
from stream_app.store import VisitorStore


def build_dashboard_router(store: VisitorStore, catalog: Catalog) -> APIRouter:
    router = APIRouter(tags=["dashboard"])
    page = resources.files("stream_app").joinpath("static/dashboard.html").read_text("utf-8")

    @router.get("/dashboard", response_class=HTMLResponse, summary="Live dashboard")
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page)

    @router.get("/v1/stats", summary="Live numbers of all workers, persona mix and KPIs")
    async def stats() -> dict[str, Any]:
        workers = await store.worker_stats()
        # Share of visitors by top persona (each worker counts the visitors it holds);
        # before the first count, the share of records written in the last window.
        basis = "visitors"
        mix = persona_counts(workers.values(), "visitors:", catalog.persona_ids)
        if not sum(mix.values()):
            basis = "records_written"
            mix = persona_counts(workers.values(), "top:", catalog.persona_ids)
        written = sum(mix.values())
        totals = {
            "workers": len(workers),
            "events_total": sum(w.get("events_total", 0.0) for w in workers.values()),
            "events_per_s": sum(w.get("events_per_s", 0.0) for w in workers.values()),
            "dead_letters_total": sum(w.get("dead_letters_total", 0.0) for w in workers.values()),
            "lag_messages": sum(w.get("lag_messages", 0.0) for w in workers.values()),
            "e2r_p50_s": max((w.get("e2r_p50_s", 0.0) for w in workers.values()), default=0.0),
            "e2r_p99_s": max((w.get("e2r_p99_s", 0.0) for w in workers.values()), default=0.0),
            "model_version": max(
                (w.get("model_version", 0.0) for w in workers.values()), default=0.0
            ),
        }
        lives = await personas_live(store, [p.id for p in catalog.personas])
        personas = [
            {"id": p.id, "name": p.name, **live}
            for p, live in zip(catalog.personas, lives, strict=True)
        ]
        candidates = [
            {**c, "worker": worker}
            for worker, found in (await store.discovery()).items()
            for c in found
        ]
        return {
            "totals": totals,
            "model_drift": drift_flags(workers.values()),
            "candidates": candidates,
            "persona_mix": {p: (n / written if written else 0.0) for p, n in mix.items()},
            "persona_mix_basis": basis,
            "personas": personas,
            "workers": workers,
        }

    return router


def drift_flags(workers: Iterable[dict[str, float]]) -> list[dict[str, str]]:
    """The model drift flags any worker's trainer raises (``drift:{signal}:{persona}``)."""
    raised = {
        tuple(key.split(":", 2)[1:])
        for w in workers
        for key, v in w.items()
        if key.startswith("drift:") and key.count(":") == 2 and v
    }
    return [{"signal": s, "persona": p} for s, p in sorted(raised)]


def persona_counts(
    workers: Iterable[dict[str, float]], prefix: str, personas: Iterable[str]
) -> dict[str, float]:
    counts = dict.fromkeys(personas, 0.0)
    for w in workers:
        for key, n in w.items():
            if key.startswith(prefix) and key[len(prefix) :] in counts:
                counts[key[len(prefix) :]] += n
    return counts
