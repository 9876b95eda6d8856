"""Location on the website path: tracker.js in Chromium, a CDN country header, a country rule.

The browser tracker never sends a country. Here every request of the browser carries the
header a CDN in front of the collector would add (``CF-IPCountry``, set by the test through
Playwright), the collector turns it into ``context.country``, and a test catalog's
``country`` rule moves the persona: visitors browsing the same pages end with different
top personas depending on their country alone.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chromium import launch, require_chromium
from tests.integration.conftest import REPO, Engine, demo_site, wait_until

pytestmark = pytest.mark.integration

WRITE_KEY = "geo-write-key"
LOCAL_PERSONA = "loyal_customer"  # the persona the test catalog gives German visitors
PAGES = ["/", "/blog", "/help", "/"]  # the same pages for both visitors


def catalog_with_country_rule(path: Path) -> Path:
    base = yaml.safe_load((REPO / "models" / "catalogs" / "b2b_saas.yaml").read_text())
    base["linking_rules"].append(
        {"persona": LOCAL_PERSONA, "when": {"country": ["DE"]}, "weight": 6.0}
    )
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, str]]:
    require_chromium()
    kafka = request.getfixturevalue("kafka_bootstrap")
    redis_url = request.getfixturevalue("redis_url")
    catalog = catalog_with_country_rule(tmp_path_factory.mktemp("geo") / "catalog.yaml")
    with demo_site(
        kafka,
        redis_url,
        PERSONA_CATALOG_PATH=str(catalog),
        PERSONA_WRITE_KEYS=json.dumps([WRITE_KEY]),
    ) as running:
        yield running


def browse(browser: Any, demo_url: str, country: str) -> str:
    """Visit PAGES with every request carrying ``CF-IPCountry``; returns the visitor id."""
    context = browser.new_context(extra_http_headers={"CF-IPCountry": country})
    try:
        page = context.new_page()
        page.goto(demo_url + PAGES[0])
        visitor = str(page.evaluate("personaStream.visitorId()"))
        for path in PAGES[1:]:
            time.sleep(0.4)
            page.click(f'nav a[href="{path}"]')  # leaving a page sends its view
            page.wait_for_url(demo_url + path)
        return visitor
    finally:
        context.close()


def test_a_cdn_country_header_moves_the_persona(site: tuple[Engine, str]) -> None:
    from playwright.sync_api import sync_playwright

    eng, demo_url = site
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            german = browse(browser, demo_url, "DE")
            american = browse(browser, demo_url, "US")
        finally:
            browser.close()

    def both_counted() -> dict[str, Any] | None:
        records = eng.records([german, american])
        done = all(r is not None and r["events"] >= len(PAGES) - 1 for r in records.values())
        return records if done else None

    records = wait_until(both_counted, 60, "both visitors' page views to reach Redis")
    de, us = records[german], records[american]
    assert de["top"]["persona"] == LOCAL_PERSONA, de
    assert us["top"]["persona"] != LOCAL_PERSONA, us
    assert de["personas"][LOCAL_PERSONA] > us["personas"][LOCAL_PERSONA] + 0.2


def test_events_written_straight_to_kafka_are_located_by_their_ip(
    site: tuple[Engine, str], kafka_bootstrap: str
) -> None:
    """The worker's enrich step: an event produced to Kafka with ``context.ip`` and no
    country gets the offline database's country, so the country rule applies to it too."""
    from kafka import KafkaProducer

    from tests.integration.conftest import produce

    eng, _ = site
    now = time.time()
    visitors = {"DE": f"kafka-de-{uuid.uuid4().hex[:6]}", "US": f"kafka-us-{uuid.uuid4().hex[:6]}"}
    ips = {"DE": "80.130.0.1", "US": "8.8.8.8"}  # Deutsche Telekom, Google (iptocc)
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "type": "page_view",
            "visitor_id": vid,
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60 + i)),
            "url": f"https://acme.example{path}",
            "dwell_ms": 20_000,
            "context": {"ip": ips[country]},
        }
        for country, vid in visitors.items()
        for i, path in enumerate(PAGES)
    ]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        produce(producer, eng.events_topic, events)
    finally:
        producer.close()

    def counted() -> dict[str, Any] | None:
        records = eng.records(list(visitors.values()))
        done = all(r is not None and r["events"] == len(PAGES) for r in records.values())
        return records if done else None

    records = wait_until(counted, 60, "the Kafka-written page views to reach Redis")
    de, us = records[visitors["DE"]], records[visitors["US"]]
    assert de["top"]["persona"] == LOCAL_PERSONA, de
    assert de["personas"][LOCAL_PERSONA] > us["personas"][LOCAL_PERSONA] + 0.2
