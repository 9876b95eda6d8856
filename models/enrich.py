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


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def channel_of(url: str, referrer: str | None) -> str:
    """Marketing channel from UTM parameters first, then the referrer."""
    try:
        query = dict(parse_qsl(urlsplit(url).query))
    except ValueError:
        query = {}
    medium = query.get("utm_medium", "").lower()
    source = query.get("utm_source", "").lower()
    if "gclid" in query or "msclkid" in query or medium in PAID_MEDIUMS:
        return "paid_search"
    if medium in DISPLAY_MEDIUMS:
        return "display"
    if medium in SOCIAL_MEDIUMS or source in ("facebook", "linkedin", "twitter", "x", "instagram"):
        return "social"
    if medium in ("email", "e-mail", "newsletter") or source == "newsletter":
        return "email"
    if medium in ("referral", "affiliate", "partner"):
        return "referral"
    if not referrer:
        return "direct"
    ref, own = _host(referrer), _host(url)
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


def region_of(country: str | None, region: str | None) -> str | None:
    if region:
        return region.lower()
    if country:
        return next((name for name, members in REGIONS.items() if country in members), "other")
    return None


def enrich(event: dict[str, Any], catalog: Catalog) -> dict[str, str]:
    """Categorical features of one event (names as in ``models.catalog.FEATURES``)."""
    out: dict[str, str] = {"type": event["type"]}
    ctx = event.get("context") or {}
    if ctx.get("user_agent"):
        out["device"], out["os"], out["browser"] = parse_user_agent(ctx["user_agent"])
    if ctx.get("country"):
        out["country"] = ctx["country"]
    region = region_of(ctx.get("country"), ctx.get("region"))
    if region:
        out["region"] = region
    try:
        ts = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
        out["hour"] = hour_bucket(ts.hour)
        out["day"] = "weekend" if ts.weekday() >= 5 else "weekday"
    except (KeyError, ValueError, AttributeError):
        pass
    if event["type"] == "page_view":
        url = event["url"]
        try:
            path = urlsplit(url).path or "/"
        except ValueError:
            path = "/"
        out["page"] = catalog.page_category(path)
        channel = channel_of(url, event.get("referrer"))
        if channel != "internal":
            out["channel"] = channel
        dwell = dwell_bucket(event.get("dwell_ms"))
        if dwell:
            out["dwell"] = dwell
    elif event["type"] == "touchpoint":
        out["touch"] = f"{event['channel']}:{event['action']}"
        out["action"] = event["action"]
        channel = event["channel"]
        out["channel"] = {
            "paid_search": "paid_search",
            "display": "display",
            "social": "social",
            "email": "email",
        }.get(channel, "other")
    return out


def one_hot(features: dict[str, str]) -> dict[str, float]:
    """River-style sparse one-hot input: ``{"page=pricing": 1.0, ...}``."""
    return {f"{k}={v}": 1.0 for k, v in features.items()}
