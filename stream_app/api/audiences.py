"""Audience export for ad retargeting: CSV in the customer-list layout ad platforms accept.

Columns: ``email`` (SHA-256 of the normalised address, as Google Customer Match and Meta
Custom Audiences accept), ``phone`` (SHA-256 of E.164 digits), ``external_id`` (our
visitor id) and ``probability``. Members without hashed identifiers are exported with
``external_id`` only (usable for first-party cookie matching).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from models.catalog import Catalog
from stream_app.settings import Settings
from stream_app.store import VisitorStore

MAX_EXPORT = 100_000
MAX_OFFSET = 1_000_000_000


def build_audience_router(settings: Settings, store: VisitorStore, catalog: Catalog) -> APIRouter:
    router = APIRouter(tags=["audiences"])

    @router.get("/v1/audiences/{persona}", summary="Export an audience (CSV or JSON)")
    async def export(
        persona: str,
        format: str = Query("csv", pattern="^(csv|json)$"),
        min_probability: float | None = Query(None, ge=0, le=1),
        limit: int = Query(10_000, ge=1, le=MAX_EXPORT),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),  # Redis refuses offsets past 2**63
        hashed_only: bool = Query(False, description="only members with a hashed e-mail or phone"),
    ) -> Any:
        if catalog.persona(persona) is None:
            return JSONResponse(
                {"error": f"unknown persona {persona!r}", "personas": catalog.persona_ids},
                status_code=404,
            )
        threshold = settings.audience_threshold if min_probability is None else min_probability
        members = await store.audience(persona, threshold, limit, offset)
        rows: list[dict[str, Any]] = []
        for visitor_id, probability in members:
            ident = await store.identity(visitor_id)
            if hashed_only and not ident:
                continue
            rows.append(
                {
                    "email": ident.get("email_sha256", ""),
                    "phone": ident.get("phone_sha256", ""),
                    "external_id": visitor_id,
                    "probability": round(probability, 4),
                }
            )
        if format == "json":
            return {
                "persona": persona,
                "min_probability": threshold,
                "count": len(rows),
                "members": rows,
            }
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["email", "phone", "external_id", "probability"])
        writer.writeheader()
        writer.writerows(rows)
        return Response(
            buf.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="audience-{persona}.csv"'},
        )

    return router
