"""The API process: collector, lookups, health. Built by :func:`create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from models.catalog import Catalog
from stream_app.api.audiences import build_audience_router
from stream_app.api.auth import Access
from stream_app.api.cors import TrackerCors
from stream_app.api.dashboard import build_dashboard_router
from stream_app.api.fast import FastRoutes, store_down_response
from stream_app.api.health import build_health_router
from stream_app.api.lookup import build_lookup_router
from stream_app.api.openapi import install_openapi
from stream_app.api.responses import OrjsonResponse
from stream_app.api.timing import RequestTimer
from stream_app.api.tracker import build_tracker_router
from stream_app.collector.producer import EventProducer
from stream_app.collector.routes import build_collector_router
from stream_app.geo import Locator
from stream_app.metrics import ApiMetrics
from stream_app.settings import Settings
from stream_app.store import VisitorStore
from stream_app.store.redis_store import RedisStore

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    store: VisitorStore | None = None,
    producer: EventProducer | None = None,
    create_topics: bool = True,
    metrics: ApiMetrics | None = None,
    locator: Locator | None = None,
    fast_routes: bool = True,
) -> FastAPI:
    store = store or RedisStore.from_url(
        settings.redis_url.get_secret_value(),
        prefix=settings.redis_prefix,
        ttl_s=settings.visitor_ttl_s,
        audience_threshold=settings.audience_threshold,
    )
    producer = producer or EventProducer(settings)
    catalog = Catalog.load(settings.catalog_path)
    metrics = metrics or ApiMetrics()
    access = Access(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if create_topics:
            from stream_app.topics import ensure_topics

            try:
                await ensure_topics(settings, timeout_s=settings.kafka_timeout_s)
            except Exception as exc:  # the API still serves lookups; /readyz tells
                log.warning("could not ensure Kafka topics at start-up: %r", exc)
        yield
        await producer.stop()
        await store.close()

    app = FastAPI(
        title="persona-stream",
        version="0.1.0",
        description="Collects events and serves live persona assignments.",
        lifespan=lifespan,
        dependencies=[Depends(access.guard)],  # roles and rate limits (stream_app/api/auth.py)
        default_response_class=OrjsonResponse,
        # Our own Prometheus metrics time every request; FastAPI's OpenTelemetry hooks
        # checked the environment on each one (≈2% of a lookup) and export nothing here.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    access.install(app)
    app.state.settings = settings
    app.state.store = store
    app.state.producer = producer
    app.state.metrics = metrics
    locator = locator or Locator.from_settings(settings)
    # The routers' paths do not overlap; FastAPI tries routes in this order, so the hottest
    # come first (a lookup was tried against every collector route before its own).
    app.include_router(build_lookup_router(settings, store, catalog, producer))
    app.include_router(build_collector_router(settings, producer, metrics, locator))
    app.include_router(build_audience_router(settings, store, catalog))
    app.include_router(build_dashboard_router(store, catalog))
    app.include_router(build_health_router(settings, store))
    app.include_router(build_tracker_router())
    if settings.cors_origins:
        app.add_middleware(TrackerCors, origins=list(settings.cors_origins))
    # The lookup and collector routes skip FastAPI's routing and dependency solving (same
    # guard, same endpoints; stream_app/api/fast.py); inside the request timer.
    if fast_routes:  # off only in the test that compares both ways of serving them
        app.add_middleware(
            FastRoutes, routes=app.router.routes, access=access, cors=bool(settings.cors_origins)
        )

    app.add_middleware(RequestTimer, metrics=metrics)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "errors": errors}, status_code=400)

    @app.exception_handler(ConnectionError)
    async def on_store_down(request: Request, exc: ConnectionError) -> Response:
        return store_down_response(exc)

    install_openapi(app, catalog, settings)
    return app


def create_app_from_env() -> FastAPI:
    """The app of one ``persona-stream api --workers N`` process (settings from its env)."""
    return create_app(Settings())
