"""CORS for the routes a browser tracker calls from the website's own origin.

Only the tracker routes get CORS headers (``PERSONA_CORS_ORIGINS``, ``*`` = any origin);
the dashboard, audience export and deletion stay same-origin. No credentials: the tracker
keeps its visitor id on the website's domain and sends it in the body or the path.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

TRACKER_PATHS = ("/tracker.js", "/v1/events", "/v1/visitors/", "/v1/personas")


def is_tracker_path(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in TRACKER_PATHS)


class TrackerCors:
    """ASGI middleware: Starlette's CORS handling for the tracker paths, nothing elsewhere."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization"],
            allow_credentials=False,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_tracker_path(scope["path"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
