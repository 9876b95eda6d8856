"""``405 Method Not Allowed`` lists every method of the path, as RFC 9110 asks.

Starlette answers 405 from the first route whose path matches, so ``/v1/visitors/{id}`` (a
GET route and a DELETE route) said ``Allow: GET``. This middleware rewrites ``Allow`` on 405
answers from the documented paths (the served OpenAPI, built once).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def path_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


class AllowedMethods:
    def __init__(self, app: ASGIApp, paths: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self._paths = paths
        self._table: list[tuple[re.Pattern[str], str]] | None = None

    def allow(self, path: str) -> str | None:
        if self._table is None:
            self._table = [
                (path_regex(template), ", ".join(sorted(m.upper() for m in operations)))
                for template, operations in self._paths().items()
            ]
        for regex, methods in self._table:
            if regex.match(path):
                return methods
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_fixed(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = self.allow(scope["path"])
                if allow:
                    headers = [(k, v) for k, v in message.get("headers", []) if k != b"allow"]
                    message = {**message, "headers": [*headers, (b"allow", allow.encode())]}
            await send(message)

        await self.app(scope, receive, send_fixed)
