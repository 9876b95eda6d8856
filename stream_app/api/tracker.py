"""``GET /tracker.js``: the browser tracker a website includes (``static/tracker.js``)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

JS_TYPE = "text/javascript; charset=utf-8"


def build_tracker_router() -> APIRouter:
    router = APIRouter(tags=["tracker"])
    script = resources.files("stream_app").joinpath("static/tracker.js").read_text("utf-8")

    @router.get(
        "/tracker.js",
        response_class=Response,
        summary="Browser tracker: visitor id, page views with dwell, assignment lookup",
    )
    async def tracker() -> Response:
        return Response(script, media_type=JS_TYPE, headers={"Cache-Control": "max-age=300"})

    return router
