"""The hot routes answered without FastAPI's routing and dependency machinery.

A lookup spent about half its time in FastAPI/Starlette routing, dependency solving (where
the access guard runs) and the endpoint wrapper. :class:`FastRoutes` is an ASGI middleware
in front of the router that serves the routes of :data:`HOT_ROUTES` itself:

- it matches the method and path (an exact path, or the route's own compiled pattern);
- it runs the same access check as the app-wide dependency, :meth:`Access.guard`, which
  reads the route's policy from the one table in ``auth.py`` (``scope["route"]`` is set to
  the FastAPI route object, as Starlette's router does, so the request timer and the guard
  see the same route);
- it calls the route's own endpoint (the one FastAPI documents and would call) with the
  request and the path parameters, and sends the ``Response`` it returns;
- it answers :class:`AccessDenied` and a store ``ConnectionError`` with the app's own error
  responses (:func:`denied_response`, :func:`store_down_response`).

Everything else goes on to FastAPI: other routes, other methods (``HEAD``, ``OPTIONS``),
paths that do not match, and every request that carries an ``Origin`` header when CORS is
configured (the CORS middleware then handles it). The routes stay registered with FastAPI,
so the OpenAPI document, the 405 answers and the route-policy test are unchanged.

Only endpoints whose parameters are the request and the path parameters, and that return a
``Response``, can be served this way; :class:`FastRoutes` checks that when it is built.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stream_app.api.auth import Access, AccessDenied, denied_response
from stream_app.api.responses import OrjsonResponse

HOT_ROUTES = frozenset(
    {
        ("GET", "/v1/visitors/{visitor_id}"),
        ("POST", "/v1/events"),
        ("POST", "/v1/batch"),
        ("POST", "/v1/page"),
        ("POST", "/v1/track"),
        ("POST", "/v1/identify"),
    }
)


def store_down_response(exc: ConnectionError) -> Response:
    return OrjsonResponse({"error": f"store unavailable: {exc}"}, status_code=503)


Endpoint = Callable[..., Awaitable[Any]]


class _Hot:
    __slots__ = ("endpoint", "params", "route")

    def __init__(self, route: APIRoute) -> None:
        self.route = route
        self.endpoint: Endpoint = route.endpoint
        self.params = tuple(route.param_convertors)
        names = set(inspect.signature(route.endpoint).parameters)
        if not names <= {"request", *self.params} or "request" not in names:
            raise TypeError(
                f"{route.path}: a fast route's endpoint takes the request and the path "
                f"parameters only, not {sorted(names)}"
            )


class FastRoutes:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Iterable[Any],
        access: Access,
        cors: bool = False,
        hot: Iterable[tuple[str, str]] = HOT_ROUTES,
    ) -> None:
        self.app = app
        self.access = access
        self.cors = cors
        wanted = set(hot)
        self._exact: dict[tuple[str, str], _Hot] = {}
        self._patterns: list[tuple[str, re.Pattern[str], _Hot]] = []
        for route in api_routes(routes):
            for method in route.methods or ():
                if (method, route.path) not in wanted:
                    continue
                wanted.discard((method, route.path))
                served = _Hot(route)
                if served.params:
                    self._patterns.append((method, route.path_regex, served))
                else:
                    self._exact[(method, route.path)] = served
        if wanted:
            raise ValueError(f"hot routes missing from the app: {sorted(wanted)}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            hot = self._exact.get((method, scope["path"]))
            params: dict[str, Any] = {}
            if hot is None:
                for wanted, regex, candidate in self._patterns:
                    if wanted == method:
                        match = regex.match(scope["path"])
                        if match is not None:
                            hot = candidate
                            params = {
                                name: candidate.route.param_convertors[name].convert(value)
                                for name, value in match.groupdict().items()
                            }
                            break
            if hot is not None and not (self.cors and _has_origin(scope)):
                await self._serve(hot, params, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(
        self, hot: _Hot, params: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["route"] = hot.route  # as Starlette's router does: the guard and timer read it
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            await self.access.guard(request)
            response = await hot.endpoint(request=request, **params)
        except AccessDenied as exc:
            response = denied_response(exc)
        except ConnectionError as exc:
            response = store_down_response(exc)
        if not isinstance(response, Response):
            raise TypeError(f"{hot.route.path}: a fast route's endpoint must return a Response")
        await response(scope, receive, send)


def api_routes(routes: Iterable[Any]) -> Iterable[APIRoute]:
    """The app's API routes as the router matches them (FastAPI 0.165 keeps an included
    router as one entry; its effective routes carry the full path)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
            continue
        contexts = getattr(route, "effective_route_contexts", None)
        for context in contexts() if contexts is not None else ():
            effective = context.starlette_route or context.original_route
            if isinstance(effective, APIRoute):
                yield effective


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])
