"""Ingestion: native ``/v1/events`` and Segment-compatible ``/v1/{batch,page,track,identify}``.

Keys and rate limits are checked before the handler runs (``stream_app/api/auth.py``); a
Segment call may carry its write key in the body instead, checked once the body is read.

Flow for every request: read body (400/413/415) -> validate each event against the schema
and the catalog's personas (rejections are reported, never fatal for the rest) -> the
normalisation steps, the last one removing the client IP -> hand the valid ones to Kafka and
wait for the acks (503 when Kafka cannot be reached) -> 202 with what was accepted and rejected.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from models.catalog import Catalog
from stream_app.api.responses import OrjsonResponse
from stream_app.collector.body import BodyError, read_json_body
from stream_app.collector.privacy import without_client_ip
from stream_app.collector.producer import EventProducer, KafkaUnavailable
from stream_app.events.segment import parse_segment_batch, segment_to_native
from stream_app.events.validate import EventValidationError, to_json_bytes, validate_batch
from stream_app.geo import Locator, RequestLocation
from stream_app.metrics import ApiMetrics
from stream_app.settings import Settings

SEGMENT_CALLS = ("page", "track", "identify")


def error(status: int, message: str, **extra: Any) -> OrjsonResponse:
    return OrjsonResponse({"error": message, **extra}, status_code=status)


def build_collector_router(
    settings: Settings,
    producer: EventProducer,
    metrics: ApiMetrics | None = None,
    locator: Locator | None = None,
) -> APIRouter:
    router = APIRouter(tags=["collect"])
    # Labels naming a persona outside the catalog are refused here, not dead-lettered later.
    personas = frozenset(Catalog.load(settings.catalog_path).persona_ids)
    locator = locator or Locator.from_settings(settings)

    def located(request: Request) -> RequestLocation:
        peer = request.client.host if request.client else None
        return RequestLocation(locator, request.headers, peer)

    async def accept(
        request: Request,
        items: list[Any],
        pre_rejected: list[dict[str, Any]],
        endpoint: str = "native",
    ) -> OrjsonResponse:
        accepted, rejected = validate_batch(items, hash_pii=settings.hash_pii, personas=personas)
        where = located(request)  # events without context.country get the sender's
        for event in accepted:
            where.fill(event)
        already = {r["index"] for r in pre_rejected}  # mapping failures hold their place
        rejected = [r for r in rejected if r["index"] not in already] + pre_rejected
        rejected.sort(key=lambda r: r["index"])
        # Enrichment from the request (e.g. location) goes above this line; removing the
        # client IP is the last normalisation step.
        if not settings.keep_client_ip:
            accepted = without_client_ip(accepted)
        try:
            await producer.send_events(accepted, [to_json_bytes(e) for e in accepted])
        except KafkaUnavailable as exc:
            if metrics:
                metrics.kafka_unavailable.inc()
            return error(503, f"events not accepted, retry later: {exc}", accepted=0)
        if metrics:
            metrics.events_accepted.labels(endpoint).inc(len(accepted))
            metrics.events_rejected.labels(endpoint).inc(len(rejected))
        body = {"accepted": len(accepted), "rejected": rejected}
        status = 400 if rejected and not accepted else 202
        return OrjsonResponse(body, status_code=status)

    @router.post("/v1/events", status_code=202, summary="Collect native events (one or a batch)")
    async def collect_events(request: Request) -> OrjsonResponse:
        try:
            body = await read_json_body(request, settings.max_body_bytes)
        except BodyError as exc:
            return error(exc.status, exc.message)
        if isinstance(body, dict) and "events" in body and "type" not in body:
            items = body["events"]
            if not isinstance(items, list):
                return error(400, "'events' must be a list of event objects")
        elif isinstance(body, dict):
            items = [body]
        else:
            return error(400, 'body must be an event object or {"events": [...]}')
        if len(items) > settings.max_batch_events:
            return error(
                413,
                f"batch of {len(items)} events exceeds the limit of {settings.max_batch_events}",
            )
        return await accept(request, items, [])

    async def segment(request: Request, call: str | None) -> OrjsonResponse:
        try:
            body = await read_json_body(request, settings.max_body_bytes)
        except BodyError as exc:
            return error(exc.status, exc.message)
        if not isinstance(body, dict):
            return error(400, "body must be a JSON object")
        request.app.state.access.check_body_key(request, body)  # when no key came otherwise
        if call is None:
            try:
                items, pre_rejected = parse_segment_batch(body)
            except EventValidationError as exc:
                return error(400, "invalid batch", errors=[e.__dict__ for e in exc.errors])
            if len(items) + len(pre_rejected) > settings.max_batch_events:
                return error(
                    413, f"batch exceeds the limit of {settings.max_batch_events} messages"
                )
            return await accept(request, items, pre_rejected, "segment")
        try:
            native = segment_to_native(body, call)
        except EventValidationError as exc:
            rejected = [
                {
                    "index": 0,
                    "event_id": body.get("messageId"),
                    "errors": [e.__dict__ for e in exc.errors],
                }
            ]
            return OrjsonResponse({"accepted": 0, "rejected": rejected}, status_code=400)
        return await accept(request, [native], [], "segment")

    @router.post("/v1/batch", summary="Segment-compatible batch")
    async def segment_batch(request: Request) -> OrjsonResponse:
        return await segment(request, None)

    def segment_handler(call: str) -> Any:
        async def handler(request: Request) -> OrjsonResponse:
            return await segment(request, call)

        return handler

    for call in SEGMENT_CALLS:
        router.add_api_route(
            f"/v1/{call}",
            segment_handler(call),
            methods=["POST"],
            summary=f"Segment-compatible {call} call",
        )
    return router
