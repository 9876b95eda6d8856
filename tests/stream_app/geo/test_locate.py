"""The order of sources, and filling events (the collector's and the worker's step)."""

from __future__ import annotations

import copy
from typing import Any

from starlette.datastructures import Headers

from stream_app.geo import Locator, RequestLocation, fill_location
from stream_app.geo.client_ip import TrustedProxies
from stream_app.geo.ip_database import OfflineDatabase

CDN = ("CF-IPCountry", "CloudFront-Viewer-Country")


def locator(proxies: list[str] | None = None) -> Locator:
    return Locator(
        cdn_headers=CDN, proxies=TrustedProxies(proxies or []), database=OfflineDatabase()
    )


def event(**context: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"event_id": "e1", "type": "page_view", "visitor_id": "v1"}
    if context:
        out["context"] = context
    return out


def test_fill_location_looks_up_the_events_own_ip() -> None:
    e = fill_location(event(ip="8.8.8.8", locale="en-US"), locator())
    assert e["context"] == {"ip": "8.8.8.8", "locale": "en-US", "country": "US"}


def test_fill_location_keeps_a_sent_country_and_leaves_events_without_ip() -> None:
    sent = event(ip="8.8.8.8", country="FR")
    assert fill_location(copy.deepcopy(sent), locator()) == sent
    assert fill_location(event(), locator()) == event()
    assert fill_location(event(ip="10.0.0.1"), locator()) == event(ip="10.0.0.1")
    assert fill_location(event(ip="garbage"), locator()) == event(ip="garbage")


def test_the_request_cdn_header_then_its_client_ip() -> None:
    where = RequestLocation(locator(), Headers({"cf-ipcountry": "DE"}), "8.8.8.8")
    assert where.fill(event())["context"] == {"country": "DE"}
    where = RequestLocation(locator(), Headers({}), "8.8.8.8")
    assert where.fill(event())["context"] == {"country": "US"}


def test_an_events_own_ip_beats_the_request() -> None:
    where = RequestLocation(locator(), Headers({"cf-ipcountry": "DE"}), "8.8.8.8")
    e = where.fill(event(ip="193.0.6.139"))
    assert e["context"] == {"ip": "193.0.6.139", "country": "NL"}


def test_the_client_ip_is_never_added_to_the_event() -> None:
    where = RequestLocation(
        locator(["10.0.0.0/8"]), Headers({"x-forwarded-for": "8.8.8.8"}), "10.0.0.2"
    )
    e = where.fill(event(locale="de-DE"))
    assert e["context"] == {"locale": "de-DE", "country": "US"}
    assert "8.8.8.8" not in repr(e)


def test_a_region_is_added_only_when_the_event_has_none() -> None:
    headers = Headers({"cloudfront-viewer-country": "US", "cloudfront-viewer-country-region": "WA"})
    where = RequestLocation(locator(), headers, None)
    assert where.fill(event())["context"] == {"country": "US", "region": "WA"}
    assert where.fill(event(region="Oregon"))["context"] == {"country": "US", "region": "Oregon"}


def test_the_request_is_located_once_for_a_whole_batch() -> None:
    calls = []

    class Counting(Locator):
        def locate_request(self, headers: Any, peer: str | None) -> Any:
            calls.append(peer)
            return super().locate_request(headers, peer)

    counting = Counting(cdn_headers=CDN, database=OfflineDatabase())
    where = RequestLocation(counting, Headers({}), "8.8.8.8")
    events = [where.fill(event()) for _ in range(500)]
    assert calls == ["8.8.8.8"]
    assert {e["context"]["country"] for e in events} == {"US"}
