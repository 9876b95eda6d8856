"""Keys with roles, and the per-route access policy of the API (INTERFACES.md section 3).

Roles are ordered: ``admin`` may do everything ``read`` may, ``read`` everything ``write``
may. Keys come from ``PERSONA_WRITE_KEYS`` / ``PERSONA_READ_KEYS`` / ``PERSONA_ADMIN_KEYS``;
a key listed under several roles has the highest.

A key is sent as ``Authorization: Bearer KEY``, as the Basic auth username (Segment
clients; the password is ignored), or as ``?writeKey=KEY`` (beacons cannot set headers). A
key sent in the query string grants at most the write role: secret keys do not belong in
URLs, which end up in proxy and browser logs. The Segment routes also read ``writeKey`` from
the JSON body when no key came in the headers or query (analytics.js does that).

Checking a key costs one SHA-256 and one dictionary lookup by digest, then a constant-time
comparison of the key itself (``hmac.compare_digest``): no I/O, nothing per request but that.

The policy is one table, :data:`ROUTE_POLICIES`, keyed by (method, route path): which role a
route needs and whether it is rate limited. A route missing from it needs the admin role
(fail closed); a test checks every route of the app is listed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from stream_app.api.ratelimit import TokenBuckets, retry_after_header
from stream_app.api.responses import OrjsonResponse
from stream_app.events.segment import write_key_from_basic_auth
from stream_app.metrics import ApiMetrics
from stream_app.settings import Settings


class Role(IntEnum):
    WRITE = 1
    READ = 2
    ADMIN = 3


@dataclass(frozen=True)
class RoutePolicy:
    role: Role | None  # None: open to anyone
    limited: bool = False  # rate limited per client IP and per key
    body_key: bool = False  # a Segment route: writeKey may come in the JSON body


OPEN = RoutePolicy(None)
COLLECT = RoutePolicy(Role.WRITE, limited=True)
SEGMENT = RoutePolicy(Role.WRITE, limited=True, body_key=True)

ROUTE_POLICIES: dict[tuple[str, str], RoutePolicy] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/tracker.js"): OPEN,
    ("POST", "/v1/events"): COLLECT,
    ("POST", "/v1/batch"): SEGMENT,
    ("POST", "/v1/page"): SEGMENT,
    ("POST", "/v1/track"): SEGMENT,
    ("POST", "/v1/identify"): SEGMENT,
    # A write key reads only the visitor id it sends (see may_read_record).
    ("GET", "/v1/visitors/{visitor_id}"): RoutePolicy(Role.WRITE, limited=True),
    ("GET", "/v1/personas"): RoutePolicy(Role.READ, limited=True),
    ("DELETE", "/v1/visitors/{visitor_id}"): RoutePolicy(Role.ADMIN),
    ("GET", "/v1/audiences/{persona}"): RoutePolicy(Role.ADMIN),
    ("GET", "/v1/stats"): RoutePolicy(Role.ADMIN),
    ("GET", "/dashboard"): RoutePolicy(Role.ADMIN),
}
FAIL_CLOSED = RoutePolicy(Role.ADMIN)


def policy_of(method: str, path: str) -> RoutePolicy:
    return ROUTE_POLICIES.get((method, path), FAIL_CLOSED)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the role granted, and a key id for rate limiting (never the key)."""

    role: Role
    key_id: str | None
    auth_disabled: bool = False


class AccessDenied(Exception):
    """401 / 403 / 429 with a message for the client and the headers to send."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class _Entry:
    secret: bytes
    role: Role
    key_id: str


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def denied_response(exc: AccessDenied) -> Response:
    """401/403/429 as ``{"error": ...}`` with the exception's headers."""
    return OrjsonResponse({"error": exc.message}, exc.status, headers=exc.headers)


class KeyRing:
    """Key -> role, precomputed: a dict of SHA-256 digests, then a constant-time compare."""

    def __init__(self, settings: Settings) -> None:
        self._by_digest: dict[bytes, _Entry] = {}
        for role, keys in (
            (Role.WRITE, settings.write_keys),
            (Role.READ, settings.read_keys),
            (Role.ADMIN, settings.admin_keys),
        ):
            for key in keys:
                secret = key.get_secret_value().encode("utf-8")
                if not secret:
                    continue
                digest = _digest(secret)
                known = self._by_digest.get(digest)
                if known is None or known.role < role:
                    self._by_digest[digest] = _Entry(secret, role, digest.hex()[:16])

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, key: str) -> _Entry | None:
        try:
            secret = key.encode("utf-8")
        except UnicodeEncodeError:
            return None
        entry = self._by_digest.get(_digest(secret))
        if entry is None or not hmac.compare_digest(entry.secret, secret):
            return None
        return entry


def presented_key(request: Request) -> tuple[str | None, bool]:
    """(the key sent, whether it came in the query string); (None, False) when none."""
    header = request.headers.get("authorization")
    if header:
        scheme = header[:7].lower()
        if scheme == "bearer ":
            token = header[7:].strip()
            if token:
                return token, False
        elif scheme.startswith("basic "):
            user = write_key_from_basic_auth(header)
            if user:
                return user, False
    query_key = request.query_params.get("writeKey")
    if query_key:
        return query_key, True
    return None, False


def client_ip(request: Request) -> str:
    """The client address uvicorn gives (behind a proxy: run uvicorn with proxy headers)."""
    return request.client.host if request.client else "unknown"


MISSING_KEY = (
    "a key is required: send it as 'Authorization: Bearer KEY', as the Basic auth username, "
    "or (write keys) as ?writeKey=KEY"
)


class Access:
    """The API's access check: roles per route, then the rate limits. One per app."""

    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.disabled = settings.auth_disabled
        self.keys = KeyRing(settings)
        self.metrics = metrics
        self.ip_buckets = (
            TokenBuckets(settings.rate_limit_ip_per_s, settings.rate_limit_ip_burst)
            if settings.rate_limit_ip_per_s > 0
            else None
        )
        self.key_buckets = (
            TokenBuckets(settings.rate_limit_key_per_s, settings.rate_limit_key_burst)
            if settings.rate_limit_key_per_s > 0
            else None
        )

    def install(self, app: FastAPI) -> None:
        """Answer :class:`AccessDenied` as JSON ``{"error": ...}`` with its headers."""

        async def on_denied(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, AccessDenied)
            return denied_response(exc)

        app.add_exception_handler(AccessDenied, on_denied)
        app.state.access = self

    async def guard(self, request: Request) -> None:
        """The access check of every request, before the route's handler runs.

        FastAPI runs it as the app-wide dependency after routing; for the hot routes
        ``stream_app/api/fast.py`` calls it itself with ``scope["route"]`` set the same way.
        """
        route = request.scope.get("route")
        policy = policy_of(request.method, getattr(route, "path", ""))
        if policy.role is None:
            return
        if policy.limited:
            self._limit(self.ip_buckets, client_ip(request), "ip")
        principal = self.authenticate(request, policy)
        request.state.principal = principal
        if policy.limited and principal is not None and principal.key_id is not None:
            self._limit(self.key_buckets, principal.key_id, "key")

    def authenticate(self, request: Request, policy: RoutePolicy) -> Principal | None:
        """The caller's principal; None only for a Segment route whose key is in the body."""
        assert policy.role is not None
        if self.disabled:
            return Principal(Role.ADMIN, None, auth_disabled=True)
        key, in_query = presented_key(request)
        if key is None:
            if policy.body_key:
                return None  # the handler calls check_body_key once it has the body
            raise self._denied(401, MISSING_KEY, policy)
        entry = self.keys.lookup(key)
        if entry is None:
            raise self._denied(401, "unknown key", policy)
        role = min(entry.role, Role.WRITE) if in_query else entry.role
        if role < policy.role:
            hint = " (secret keys count only in the Authorization header)" if in_query else ""
            raise self._denied(
                403,
                f"this key may not {request.method} this route: it needs the "
                f"{policy.role.name.lower()} role{hint}",
                policy,
            )
        return Principal(role, entry.key_id)

    def check_body_key(self, request: Request, body: dict[str, Any]) -> None:
        """Segment routes: the ``writeKey`` of the body when no key came otherwise."""
        if self.disabled or getattr(request.state, "principal", None) is not None:
            return
        key = body.get("writeKey")
        if not isinstance(key, str) or not key:
            raise self._denied(401, MISSING_KEY, SEGMENT)
        entry = self.keys.lookup(key)
        if entry is None:
            raise self._denied(401, "unknown key", SEGMENT)
        request.state.principal = Principal(Role.WRITE, entry.key_id)
        self._limit(self.key_buckets, entry.key_id, "key")

    def _denied(self, status: int, message: str, policy: RoutePolicy) -> AccessDenied:
        self.metrics.auth_refused.labels(str(status)).inc()
        headers = {}
        if status == 401:  # the dashboard's routes ask the browser for a key (Basic)
            scheme = "Basic" if policy.role == Role.ADMIN else "Bearer"
            headers["WWW-Authenticate"] = f'{scheme} realm="persona-stream"'
        return AccessDenied(status, message, headers)

    def _limit(self, buckets: TokenBuckets | None, name: str, scope: str) -> None:
        if buckets is None:
            return
        wait = buckets.take(name)
        if wait > 0:
            self.metrics.rate_limited.labels(scope).inc()
            raise AccessDenied(
                429,
                f"too many requests for this {'client' if scope == 'ip' else 'key'}; "
                f"retry in {wait:.2f} s",
                {"Retry-After": retry_after_header(wait)},
            )


def principal_of(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def sees_every_record(request: Request) -> bool:
    """Read and admin keys (and a disabled auth) see every record without a check."""
    principal = principal_of(request)
    return principal is not None and principal.role >= Role.READ


def may_read_record(request: Request, requested_id: str, record: dict[str, Any]) -> bool:
    """Whether the caller may see ``record``, found by looking ``requested_id`` up.

    Read and admin keys see every record. A write key (a browser's) sees a record only when
    ``requested_id`` is a *visitor id* of it: the record's own ``visitor_id`` (an anonymous
    visitor; canonical ids of merged users, ``user:{user_id}``, do not count) or one of its
    ``merged_visitor_ids``. A record found through a user id (``ps:user:{id}``) is neither,
    so the API answers 404 exactly as for an unknown id, telling nothing about that user.
    """
    principal = principal_of(request)
    if principal is None or principal.role >= Role.READ:
        return principal is not None
    if record.get("visitor_id") == requested_id and not requested_id.startswith("user:"):
        return True
    return requested_id in (record.get("merged_visitor_ids") or ())
