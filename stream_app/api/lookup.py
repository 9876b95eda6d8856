"""Lookups for the personalisation layer and the marketing team (INTERFACES.md 2.1, 2.3)."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from models.catalog import Catalog
from stream_app.api.auth import may_read_record, sees_every_record
from stream_app.api.persona_live import personas_live
from stream_app.api.responses import EncodedJsonResponse, OrjsonResponse
from stream_app.collector.producer import EventProducer, KafkaUnavailable
from stream_app.settings import Settings
from stream_app.store import VisitorStore


def build_lookup_router(
    settings: Settings, store: VisitorStore, catalog: Catalog, producer: EventProducer
) -> APIRouter:
    router = APIRouter(tags=["lookup"])

    @router.get(
        "/v1/visitors/{visitor_id}",
        summary="Current assignment of a visitor or user id",
        response_class=EncodedJsonResponse,
    )
    async def get_visitor(visitor_id: str, request: Request) -> Response:
        # The stored lookup JSON is the answer: sent as Redis holds it. Only a write key's
        # request decodes it, to check the id asked for is one of the record's visitor ids.
        encoded = await store.get_encoded(visitor_id)
        if (
            encoded is not None
            and not sees_every_record(request)
            and not may_read_record(request, visitor_id, orjson.loads(encoded))
        ):
            encoded = None
        if encoded is None:
            return OrjsonResponse({"error": f"unknown visitor {visitor_id!r}"}, status_code=404)
        return EncodedJsonResponse(encoded)

    @router.delete("/v1/visitors/{visitor_id}", summary="Forget a visitor everywhere")
    async def forget_visitor(visitor_id: str) -> Any:
        canonical = await store.resolve(visitor_id) or visitor_id
        record = await store.get(canonical) or {}
        # The worker owning each id drops its table state (the merged user's state and the
        # markers of the anonymous visitors merged into it) and writes a tombstone to the
        # assignments feed; the API removes the serving copy at once.
        ids = [canonical, *record.get("merged_visitor_ids", [])]
        requested_at = time.time()  # events sent before this are not brought back
        try:
            for ident in ids:
                doc = {"op": "forget", "visitor_id": ident, "at": requested_at}
                forget = json.dumps(doc).encode()
                await producer.send_raw(settings.topic_control, ident.encode(), forget)
            await producer.send_raw(settings.topic_assignments, canonical.encode(), None)
        except KafkaUnavailable as exc:
            return JSONResponse({"error": f"not forgotten, retry later: {exc}"}, status_code=503)
        # The worker may have forgotten it already (it deletes too): found is what was read.
        found = await store.delete(visitor_id) or bool(record)
        return {"visitor_id": canonical, "deleted": found}

    # The catalog part of each persona does not change while the process runs.
    persona_ids = [p.id for p in catalog.personas]
    static = [{**p.model_dump(), "display": p.display_content()} for p in catalog.personas]

    @router.get("/v1/personas", summary="The catalog with live audience sizes and KPIs")
    async def personas() -> Any:
        lives = await personas_live(store, persona_ids)  # one store round trip
        out = [{**fixed, **live} for fixed, live in zip(static, lives, strict=True)]
        return {
            "catalog": catalog.name,
            "audience_threshold": settings.audience_threshold,
            "personas": out,
        }

    return router
