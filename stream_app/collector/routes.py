"""Ingestion: native ``/v1/events`` and Segment-compatible ``/v1/{batch,page,track,identify}``.

Write keys (``PERSONA_WRITE_KEYS``): Segment calls carry one in Basic auth (or ``writeKey``
in the body); native calls in ``?writeKey=`` (the browser tracker's sendBeacon cannot set
headers) or Basic auth.

Flow for every request: read body (400/413/415) -> validate each event (rejections are
reported, never fatal for the rest) -> hand the valid ones to Kafka and wait for the
acks (503 when Kafka cannot be reached) -> 202 with what was accepted and rejected.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request

from stream_app.api.responses import OrjsonResponse
from stream_app.collector.body import BodyError, read_json_body
from stream_app.collector.producer import EventProducer, KafkaUnavailable
from stream_app.events.segment import (
    parse_segment_batch,
    segment_to_native,
    write_key_from_basic_auth,
)
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
    write_keys = {k.get_secret_value() for k in settings.write_keys}
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
        accepted, rejected = validate_batch(items, hash_pii=settings.hash_pii)
        where = located(request)  # events without context.country get the sender's
        for event in accepted:
            where.fill(event)
        already = {r["index"] for r in pre_rejected}  # mapping failures hold their place
        rejected = [r for r in rejected if r["index"] not in already] + pre_rejected
        rejected.sort(key=lambda r: r["index"])
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

    def known(key: str) -> bool:
        return any(secrets.compare_digest(key, k) for k in write_keys)

    def native_authorised(request: Request) -> bool:
        """``writeKey`` query parameter (sendBeacon cannot set headers) or Basic auth username.

        With no keys configured anything goes; a key that is sent must be known; no key at
        all is accepted unless ``PERSONA_WRITE_KEY_REQUIRED`` (existing clients send none).
        """
        if not write_keys:
            return True
        key = request.query_params.get("writeKey") or write_key_from_basic_auth(
            request.headers.get("authorization")
        )
        if not key:
            return not settings.write_key_required
        return known(key)

    @router.post("/v1/events", status_code=202, summary="Collect native events (one or a batch)")
    async def collect_events(request: Request) -> OrjsonResponse:
        if not native_authorised(request):
            return error(
                401, "missing or unknown write key (send it as ?writeKey= or Basic auth username)"
            )
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

    def authorised(request: Request, body: dict[str, Any]) -> bool:
        if not write_keys:
            return True
        key = write_key_from_basic_auth(request.headers.get("authorization"))
        key = key or body.get("writeKey")
        return isinstance(key, str) and known(key)

    async def segment(request: Request, call: str | None) -> OrjsonResponse:
        try:
            body = await read_json_body(request, settings.max_body_bytes)
        except BodyError as exc:
            return error(exc.status, exc.message)
        if not isinstance(body, dict):
            return error(400, "body must be a JSON object")
        if not authorised(request, body):
            return error(401, "missing or unknown write key (send it as the Basic auth username)")
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
