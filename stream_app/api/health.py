"""Liveness and readiness: ready only when both Kafka and Redis answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from stream_app.settings import Settings
from stream_app.store import VisitorStore
from stream_app.topics import kafka_answers


def build_health_router(settings: Settings, store: VisitorStore) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Kafka and Redis both answer")
    async def readyz() -> JSONResponse:
        checks = {
            "kafka": await kafka_answers(settings.kafka_bootstrap, timeout_s=2.0),
            "redis": await store.ping(),
        }
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    return router
