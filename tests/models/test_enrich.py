from __future__ import annotations

import pytest

from models.catalog import Catalog
from models.enrich import channel_of, enrich, parse_user_agent, region_of
from tests.models.conftest import page

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)


def test_user_agents() -> None:
    assert parse_user_agent(CHROME_WIN) == ("desktop", "Windows", "Chrome")
    assert parse_user_agent(IPHONE)[0] == "mobile"
    assert parse_user_agent(IPAD)[0] == "tablet"
    assert parse_user_agent("Googlebot/2.1 (+http://www.google.com/bot.html)")[0] == "bot"


@pytest.mark.parametrize("ua", ["", "\x00\x01garbage", "(((", "x" * 5000, "Mozilla/5.0 ("])
def test_malformed_user_agent_does_not_raise(ua: str) -> None:
    device, os_family, browser = parse_user_agent(ua)
    assert device in {"desktop", "mobile", "tablet", "bot", "unknown"}
    assert os_family and browser


@pytest.mark.parametrize(
    ("url", "referrer", "channel"),
    [
        ("https://s.example/?utm_source=google&utm_medium=cpc", "", "paid_search"),
        ("https://s.example/?gclid=abc", "https://www.google.com/", "paid_search"),
        ("https://s.example/", "https://www.google.de/search?q=x", "organic_search"),
        ("https://s.example/", "https://www.linkedin.com/feed", "social"),
        ("https://s.example/?utm_medium=email&utm_source=nl", "", "email"),
        ("https://s.example/?utm_medium=display", "", "display"),
        ("https://s.example/", "https://blog.partner.org/post", "referral"),
        ("https://s.example/", "", "direct"),
        ("https://www.s.example/pricing", "https://www.s.example/", "internal"),
    ],
)
def test_channel(url: str, referrer: str, channel: str) -> None:
    assert channel_of(url, referrer) == channel


def test_unparsable_url_gives_page_other(catalog: Catalog) -> None:
    features = enrich(page("http://[::1/docs", referrer="http://[bad"), catalog)
    assert features["page"] == "other"
    assert features["type"] == "page_view"


def test_page_view_features(catalog: Catalog) -> None:
    event = page(
        "https://acme.example/docs/api?utm_source=google&utm_medium=cpc",
        ts="2026-11-21T23:30:00+01:00",
        dwell_ms=75_000,
        context={"user_agent": CHROME_WIN, "country": "de"},
    )
    f = enrich(event, catalog)
    assert f == {
        "type": "page_view",
        "device": "desktop",
        "os": "Windows",
        "browser": "Chrome",
        "country": "DE",
        "region": "emea",
        "hour": "evening",
        "day": "weekend",
        "page": "docs",
        "channel": "paid_search",
        "dwell": "long",
    }


def test_touchpoint_features(catalog: Catalog) -> None:
    event = {"type": "touchpoint", "channel": "webinar", "action": "attend", "ts": "bad ts"}
    f = enrich(event, catalog)
    assert f == {
        "type": "touchpoint",
        "touch": "webinar:attend",
        "action": "attend",
        "channel": "other",
    }


def test_regions() -> None:
    assert region_of("US") == "amer"
    assert region_of("jp") == "apac"
    assert region_of("ZZ") == "other"
    assert region_of(None) is None
