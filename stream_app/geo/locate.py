"""Where a visitor is: the order of sources, and filling ``context.country``/``region``.

For an event without ``context.country`` (the event's own value always wins):

1. the event's own ``context.ip`` in the IP database (a server-side sender relaying a
   visitor's event knows the visitor's address better than the connection does);
2. a trusted CDN header of the request (``PERSONA_GEO_CDN_HEADERS``, in order);
3. the request's client IP (:class:`~stream_app.geo.client_ip.TrustedProxies`) in the
   IP database.

The client IP is personal data: it is used here and forgotten. It is never added to the
event (an event keeps the ``context.ip`` it was sent with, nothing more) and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream_app.geo.cdn import location_from_headers
from stream_app.geo.client_ip import TrustedProxies, parse_ip
from stream_app.geo.ip_database import IpDatabase, MmdbDatabase, OfflineDatabase
from stream_app.geo.location import Location
from stream_app.settings import Settings


class Locator:
    """The configured sources; one per process, cheap to call per request and per event."""

    def __init__(
        self,
        *,
        cdn_headers: tuple[str, ...] = (),
        proxies: TrustedProxies | None = None,
        database: IpDatabase | None = None,
    ) -> None:
        self.cdn_headers = cdn_headers
        self.proxies = proxies or TrustedProxies(())
        self.database = database

    @classmethod
    def from_settings(cls, settings: Settings) -> Locator:
        database: IpDatabase | None = None
        if settings.geo_mmdb_path is not None:
            database = MmdbDatabase(settings.geo_mmdb_path)
        elif settings.geo_ip_lookup:
            database = OfflineDatabase()
        return cls(
            cdn_headers=tuple(settings.geo_cdn_headers),
            proxies=TrustedProxies(settings.trusted_proxies),
            database=database,
        )

    def lookup_ip(self, ip: object) -> Location | None:
        if self.database is None or not isinstance(ip, str):
            return None
        address = parse_ip(ip)
        return self.database.lookup(address) if address is not None else None

    def locate_request(self, headers: Mapping[str, str], peer: str | None) -> Location | None:
        """Where the sender of a request is: a trusted CDN header, else its client IP."""
        found = location_from_headers(headers, self.cdn_headers) if self.cdn_headers else None
        if found is not None or self.database is None:
            return found
        client = self.proxies.client_ip(peer, headers.get("x-forwarded-for"))
        return self.database.lookup(client) if client is not None else None


def has_country(event: Mapping[str, Any]) -> bool:
    ctx = event.get("context")
    return isinstance(ctx, dict) and bool(ctx.get("country"))


def apply_location(event: dict[str, Any], location: Location) -> dict[str, Any]:
    """Set ``context.country`` (and ``region`` when the event has none) in place."""
    ctx = event.get("context")
    if not isinstance(ctx, dict):
        ctx = event["context"] = {}
    ctx["country"] = location.country
    if location.region and not ctx.get("region"):
        ctx["region"] = location.region
    return event


def fill_location(event: dict[str, Any], locator: Locator) -> dict[str, Any]:
    """The worker's step for events written straight to Kafka: ``context.ip`` -> country.

    Pure apart from the in-memory database lookup; returns ``event`` (changed in place)
    unchanged when it already has a country, has no IP, or the IP is not found.
    """
    if has_country(event):
        return event
    ctx = event.get("context")
    found = locator.lookup_ip(ctx.get("ip")) if isinstance(ctx, dict) else None
    return apply_location(event, found) if found is not None else event


class RequestLocation:
    """Locates every event of one request, looking the request itself up at most once."""

    def __init__(self, locator: Locator, headers: Mapping[str, str], peer: str | None) -> None:
        self._locator = locator
        self._headers = headers
        self._peer = peer
        self._done = False
        self._found: Location | None = None

    def request(self) -> Location | None:
        if not self._done:
            self._found = self._locator.locate_request(self._headers, self._peer)
            self._done = True
        return self._found

    def fill(self, event: dict[str, Any]) -> dict[str, Any]:
        if has_country(event):
            return event
        ctx = event.get("context")
        found = self._locator.lookup_ip(ctx.get("ip")) if isinstance(ctx, dict) else None
        found = found or self.request()
        return apply_location(event, found) if found is not None else event
