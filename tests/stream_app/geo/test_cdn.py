"""Country (and region) from each CDN's header; placeholders and untrusted headers ignored."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from stream_app.geo.cdn import location_from_headers
from stream_app.settings import Settings

TRUSTED = Settings().geo_cdn_headers


@pytest.mark.parametrize(
    ("header", "region_header"),
    [
        ("CF-IPCountry", "CF-Region-Code"),
        ("CloudFront-Viewer-Country", "CloudFront-Viewer-Country-Region"),
        ("X-Vercel-IP-Country", "X-Vercel-IP-Country-Region"),
        ("Fastly-Geo-Country-Code", "Fastly-Geo-Region"),
        ("X-AppEngine-Country", "X-AppEngine-Region"),
    ],
)
def test_country_and_region_from_each_cdn_header(header: str, region_header: str) -> None:
    headers = Headers({header: "de", region_header: "BY"})
    found = location_from_headers(headers, TRUSTED)
    assert found is not None
    assert (found.country, found.region, found.source) == ("DE", "BY", "cdn")
    only_country = location_from_headers(Headers({header: "JP"}), TRUSTED)
    assert only_country is not None and (only_country.country, only_country.region) == ("JP", None)


@pytest.mark.parametrize("value", ["XX", "T1", "A1", "EU", "", "DEU", "1x", "Germany"])
def test_placeholders_and_non_codes_are_skipped(value: str) -> None:
    assert location_from_headers(Headers({"CF-IPCountry": value}), TRUSTED) is None


def test_first_trusted_header_in_setting_order_wins() -> None:
    headers = Headers(
        {"CF-IPCountry": "XX", "CloudFront-Viewer-Country": "FR", "X-AppEngine-Country": "IT"}
    )
    found = location_from_headers(headers, TRUSTED)
    assert found is not None and found.country == "FR"  # CF's "unknown" falls through
    reordered = location_from_headers(headers, ["X-AppEngine-Country", "CloudFront-Viewer-Country"])
    assert reordered is not None and reordered.country == "IT"


def test_a_header_not_in_the_setting_is_not_believed() -> None:
    headers = Headers({"CF-IPCountry": "DE"})
    assert location_from_headers(headers, ["CloudFront-Viewer-Country"]) is None
    assert location_from_headers(headers, []) is None
