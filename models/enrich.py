"""Enrichment of one native event: device class, channel, page category, geo, time.

Everything here is a pure function of the event (and the catalog's page rules);
user-agent parsing is cached because ua-parser costs ~1 ms per new string.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from models.catalog import Catalog

SEARCH_ENGINES = ("google.", "bing.", "duckduckgo.", "yahoo.", "baidu.", "yandex.", "ecosia.")
SOCIAL = (
    "facebook.",
    "twitter.",
    "t.co",
    "x.com",
    "linkedin.",
    "lnkd.in",
    "instagram.",
    "reddit.",
    "youtube.",
    "tiktok.",
    "pinterest.",
)
EMAIL_HOSTS = ("mail.", "outlook.", "gmail.")
PAID_MEDIUMS = {"cpc", "ppc", "paid", "paidsearch", "paid_search", "sem"}
DISPLAY_MEDIUMS = {"display", "banner", "cpm", "retargeting", "programmatic"}
SOCIAL_MEDIUMS = {"social", "social-paid", "paid_social", "sm"}
REGIONS = {
    "emea": {
        "DE",
        "FR",
        "GB",
        "IT",
        "ES",
        "NL",
        "SE",
        "CH",
        "AT",
        "BE",
        "PL",
        "IE",
        "DK",
        "NO",
        "FI",
        "PT",
        "ZA",
        "AE",
        "IL",
    },
    "amer": {"US", "CA", "MX", "BR", "AR", "CL", "CO"},
    "apac": {"JP", "CN", "IN", "AU", "NZ", "SG", "KR", "HK", "TW", "ID"},
}


_REGION_OF = {code: name for name, members in REGIONS.items() for code in members}


@lru_cache(maxsize=8192)
def parse_user_agent(ua: str) -> tuple[str, str, str]:
    """(device class, os family, browser family); device is desktop/mobile/tablet/bot/unknown."""
    from ua_parser import parse

    try:
        result = parse(ua[:1024])
    except Exception:
        return ("unknown", "other", "other")
    browser = result.user_agent.family if result.user_agent else "other"
    os_family = result.os.family if result.os else "other"
    device = result.device.family if result.device else ""
    low = ua.lower()
    if device == "Spider" or "bot" in low or "crawler" in low:
        kind = "bot"
    elif device in ("iPad",) or "tablet" in low or (os_family == "Android" and "mobile" not in low):
        kind = "tablet"
    elif os_family in ("iOS", "Android") or "mobile" in low:
        kind = "mobile"
    elif result.user_agent is None and result.os is None:
        kind = "unknown"
    else:
        kind = "desktop"
    return (kind, os_family or "other", browser or "other")


@lru_cache(maxsize=4096)
def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


@lru_cache(maxsize=4096)
def _referrer_channel(ref: str, own: str) -> str:
    if not ref:
        return "direct"
    if own and (ref == own or ref.endswith("." + own) or own.endswith("." + ref)):
        return "internal"
    if any(s in ref for s in SEARCH_ENGINES):
        return "organic_search"
    if any(s in ref for s in SOCIAL):
        return "social"
    if any(ref.startswith(s) for s in EMAIL_HOSTS):
        return "email"
    return "referral"


def _utm_channel(query: str) -> str | None:
    if "utm_" not in query and "clid" not in query:
        return None
    params = dict(parse_qsl(query))
    medium = params.get("utm_medium", "").lower()
    source = params.get("utm_source", "").lower()
    if "gclid" in params or "msclkid" in params or medium in PAID_MEDIUMS:
        return "paid_search"
    if medium in DISPLAY_MEDIUMS:
        return "display"
    if medium in SOCIAL_MEDIUMS or source in ("facebook", "linkedin", "twitter", "x", "instagram"):
        return "social"
    if medium in ("email", "e-mail", "newsletter") or source == "newsletter":
        return "email"
    if medium in ("referral", "affiliate", "partner"):
        return "referral"
    return None


@lru_cache(maxsize=8192)
def _path(url: str) -> str | None:
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return None


@lru_cache(maxsize=8192)
def channel_of(url: str, referrer: str | None) -> str:
    """Marketing channel from UTM parameters (and ad click ids) first, then the referrer."""
    try:
        parts = urlsplit(url)
        own = (parts.hostname or "").lower()
    except ValueError:
        return _referrer_channel(_host(referrer or ""), "")
    return _utm_channel(parts.query) or _referrer_channel(_host(referrer or ""), own)


def dwell_bucket(dwell_ms: int | None) -> str | None:
    if dwell_ms is None:
        return None
    if dwell_ms < 10_000:
        return "short"
    if dwell_ms < 60_000:
        return "medium"
    return "long"


def hour_bucket(hour: int) -> str:
    if hour < 6:
        return "night"
    if hour < 12:
        return "morning"
    if hour < 18:
        return "afternoon"
    return "evening"


def region_of(country: str | None) -> str | None:
    """Macro region (emea/amer/apac/other) of an ISO 3166-1 alpha-2 country code."""
    if not country:
        return None
    return _REGION_OF.get(country.upper(), "other")


# Touchpoint channels that are also marketing channels; the rest count as "other".
_TOUCH_CHANNEL = {c: c for c in ("paid_search", "display", "social", "email")}


def parse_ts(ts: Any) -> datetime | None:
    """An RFC 3339 time (Python 3.11 reads a ``Z`` offset itself), or None."""
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts)
    except ValueError:
        return None


def enrich(event: dict[str, Any], catalog: Catalog) -> dict[str, str]:
    """Categorical features of one event (names as in ``models.catalog.FEATURES``).

    Tolerant of bad input: a malformed user agent gives ``device=unknown``, an unparsable
    URL gives ``page=other``; a missing field just leaves its feature out. Hour and weekday
    are in the event's own offset (the visitor's local time when the tracker sends it).
    """
    return enrich_at(event, catalog, parse_ts(event.get("ts")))


_HOUR_BUCKETS = tuple(hour_bucket(h) for h in range(24))


def enrich_at(
    event: dict[str, Any],
    catalog: Catalog,
    when: datetime | None,
    pages: dict[Any, tuple[str, str]] | None = None,
) -> dict[str, str]:
    """:func:`enrich` with the event's ``ts`` already parsed (``when``). ``pages``: a plain
    dict the caller keeps as a cache of (URL, referrer) -> (page category, channel) for
    this catalog (one look-up instead of three; the catalog's own cache sits behind
    pydantic's slower private-attribute access)."""
    kind = event.get("type")
    out: dict[str, str] = {"type": kind if isinstance(kind, str) else "other"}
    ctx = event.get("context")
    if isinstance(ctx, dict):
        ua = ctx.get("user_agent")
        if isinstance(ua, str) and ua:
            out["device"], out["os"], out["browser"] = parse_user_agent(ua)
        country = ctx.get("country")
        if isinstance(country, str) and country:
            upper = country.upper()
            out["country"] = upper
            out["region"] = _REGION_OF.get(upper, "other")
    if when is not None:
        out["hour"] = _HOUR_BUCKETS[when.hour]
        out["day"] = "weekend" if when.weekday() >= 5 else "weekday"
    if kind == "page_view":
        url = event.get("url")
        url = url if isinstance(url, str) else ""
        referrer = event.get("referrer")
        referrer = referrer if isinstance(referrer, str) else None
        key = (url, referrer)
        hit = pages.get(key) if pages is not None else None
        if hit is None:
            path = _path(url)
            page = catalog.page_category(path) if path is not None else "other"
            hit = (page, channel_of(url, referrer))
            if pages is not None:
                if len(pages) >= 20_000:
                    pages.clear()
                pages[key] = hit
        out["page"], channel = hit
        if channel != "internal":
            out["channel"] = channel
        dwell = event.get("dwell_ms")
        if isinstance(dwell, int) and not isinstance(dwell, bool) and dwell >= 0:
            out["dwell"] = "short" if dwell < 10_000 else "medium" if dwell < 60_000 else "long"
    elif kind == "touchpoint":
        channel, action = str(event.get("channel", "other")), str(event.get("action", "other"))
        out["touch"] = f"{channel}:{action}"
        out["action"] = action
        out["channel"] = _TOUCH_CHANNEL.get(channel, "other")
    return out


def one_hot(features: dict[str, str]) -> dict[str, float]:
    """River-style sparse one-hot input: ``{"page=pricing": 1.0, ...}``."""
    return {f"{k}={v}": 1.0 for k, v in features.items()}
