"""Lookups for the personalisation layer (INTERFACES.md 2.1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from stream_app.settings import Settings
from stream_app.store import VisitorStore


def build_lookup_router(settings: Settings, store: VisitorStore) -> APIRouter:
    router = APIRouter(tags=["lookup"])

    @router.get("/v1/visitors/{visitor_id}", summary="Current assignment of a visitor (or user id)")
    async def get_visitor(visitor_id: str) -> Any:
        record = await store.get(visitor_id)
        if record is None:
            return JSONResponse({"error": f"unknown visitor {visitor_id!r}"}, status_code=404)
        return record

    return router
