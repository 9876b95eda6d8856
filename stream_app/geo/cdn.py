"""Country (and region) from the headers a CDN adds to every request it forwards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stream_app.geo.codes import clean_region, iso_country
from stream_app.geo.location import Location

# The region header each CDN sends beside its country header (ISO 3166-2 subdivision part,
# e.g. "CA" for California), where it has one. Lower-case: HTTP header names ignore case.
REGION_HEADER = {
    "cf-ipcountry": "cf-region-code",
    "cloudfront-viewer-country": "cloudfront-viewer-country-region",
    "x-vercel-ip-country": "x-vercel-ip-country-region",
    "fastly-geo-country-code": "fastly-geo-region",
    "x-appengine-country": "x-appengine-region",
}


def location_from_headers(headers: Mapping[str, str], trusted: Sequence[str]) -> Location | None:
    """The first trusted header (in ``trusted``'s order) that holds a real country code.

    ``headers`` must look names up without regard to case (Starlette's ``Headers`` does;
    a plain dict must have lower-case keys). Placeholders such as Cloudflare's "XX"
    (unknown) and "T1" (Tor) are skipped.
    """
    for name in trusted:
        lower = name.lower()
        country = iso_country(headers.get(lower))
        if country is None:
            continue
        region_header = REGION_HEADER.get(lower)
        region = clean_region(headers.get(region_header)) if region_header else None
        return Location(country, region, source="cdn")
    return None
