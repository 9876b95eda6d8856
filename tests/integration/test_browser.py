"""A real browser on the demo site: the tracker's page views personalise the hero banner.

Real worker and API (write key required, CORS for the demo's origin), the demo site as a
real ``persona-stream demo`` process, Debian's headless Chromium driven by Playwright.
Screenshots go to ``test-artifacts/`` (demo before/after, the API's dashboard).
"""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from models.catalog import Catalog
from stream_app.demo.site import NEUTRAL, site_pages
from tests.chromium import launch, require_chromium
from tests.integration.conftest import ADMIN_KEY, REPO, WRITE_KEY, Engine, demo_site, wait_until

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "test-artifacts"
TRACKER_CALLS = """async (user) => [
  await personaStream.touchpoint({channel: "webinar", action: "attend", name: "Demo day"}),
  await personaStream.feedback("nps", 9, {comment: "nice"}),
  await personaStream.identify(user, {job_title: "CTO"}),
]"""
PERSONA = "tech_evaluator"
DWELL_S = 1.5
# Records what the page hands to sendBeacon (Playwright does not report beacons sent while
# a page unloads); sessionStorage survives the navigations within the demo's origin.
BEACON_SPY = """
const send = navigator.sendBeacon.bind(navigator);
navigator.sendBeacon = (url, body) => {
  const log = JSON.parse(sessionStorage.getItem("beacons") || "[]");
  log.push({url: String(url), body: String(body)});
  sessionStorage.setItem("beacons", JSON.stringify(log));
  return send(url, body);
};
"""


def persona_paths(catalog: Catalog, persona: str) -> list[str]:
    """The demo pages whose category a linking rule of ``persona`` rewards."""
    categories = {
        c
        for rule in catalog.linking_rules
        if rule.persona == persona and rule.weight > 0
        for c in rule.when.get("page", [])
    }
    pages = site_pages(catalog)
    first: dict[str, str] = {}
    for path, category in pages.items():
        if category in categories:
            first.setdefault(category, path)
    return list(first.values())


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest) -> Iterator[tuple[Engine, str]]:
    require_chromium()
    kafka = request.getfixturevalue("kafka_bootstrap")
    redis_url = request.getfixturevalue("redis_url")
    with demo_site(kafka, redis_url) as running:
        yield running


def test_browsing_as_a_persona_changes_the_banner(site: tuple[Engine, str]) -> None:
    from playwright.sync_api import sync_playwright

    eng, demo_url = site
    catalog = Catalog.load(REPO / "models" / "catalogs" / "b2b_saas.yaml")
    paths = persona_paths(catalog, PERSONA)
    assert len(paths) >= 2, f"the catalog rewards too few pages for {PERSONA}: {paths}"
    want = catalog.persona(PERSONA)
    assert want is not None
    display = want.display_content()
    user = f"u-{uuid.uuid4().hex[:8]}"
    ARTIFACTS.mkdir(exist_ok=True)
    before, after, dashboard = (
        ARTIFACTS / "demo-before.png",
        ARTIFACTS / "demo-after.png",
        ARTIFACTS / "dashboard.png",
    )
    for shot in (before, after, dashboard):
        shot.unlink(missing_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(BEACON_SPY)
            page = context.new_page()
            page.goto(demo_url + "/")
            hero = page.locator("#hero")
            assert hero.get_attribute("data-persona") == ""
            assert page.locator("#hero-headline").inner_text() == NEUTRAL["headline"]
            visitor = page.evaluate("personaStream.visitorId()")
            assert page.evaluate("personaStream.assignment()") is None  # 404: not seen yet
            time.sleep(DWELL_S)
            page.screenshot(path=str(before))

            visited = ["/"]
            for _ in range(2):
                for path in paths:
                    page.click(f'nav a[href="{path}"]')
                    page.wait_for_url(demo_url + path)
                    visited.append(path)
                    time.sleep(DWELL_S)
            page.click('nav a[href="/"]')  # leaving the last page sends its view
            page.wait_for_url(demo_url + "/")
            try:
                page.wait_for_selector(f'#hero[data-persona="{PERSONA}"]', timeout=60_000)
            except Exception as exc:
                record = eng.http.get(f"/v1/visitors/{visitor}")
                raise AssertionError(
                    f"banner never changed to {PERSONA}: lookup {record.status_code} "
                    f"{record.text}; demo log {eng.log('demo')[-2000:]}"
                ) from exc
            assert page.locator("#hero-headline").inner_text() == display["headline"]
            assert page.locator("#hero-cta").inner_text() == display["cta"]
            assert page.locator("#hero-cta").get_attribute("href") == display["cta_url"]
            page.screenshot(path=str(after))
            sent = page.evaluate("JSON.parse(sessionStorage.getItem('beacons') || '[]')")
            # The other calls go through fetch and read the answer: CORS must allow it.
            results = page.evaluate(TRACKER_CALLS, user)
            assert results == [True, True, True], results

            # The dashboard needs an admin key: the browser asks for it (Basic auth challenge).
            # A second context, so the demo page stays open and its view is not sent.
            admin = browser.new_context(
                viewport={"width": 1280, "height": 800},
                http_credentials={"username": ADMIN_KEY, "password": ""},
            )
            board = admin.new_page()
            board.goto(f"http://127.0.0.1:{eng.api_port}/dashboard")
            board.wait_for_function(  # the first /v1/stats answer is drawn
                "Number(document.getElementById('workers').textContent) >= 1", timeout=15_000
            )
            time.sleep(4)  # two polls of /v1/stats, so the charts have points
            board.screenshot(path=str(dashboard), full_page=True)
        finally:
            browser.close()

    # One page_view per page left, each with its own id, the visible time as dwell.
    assert sent and all(b["url"].endswith(f"/v1/events?writeKey={WRITE_KEY}") for b in sent)
    beacons = [json.loads(b["body"]) for b in sent]
    views = [b for b in beacons if b.get("type") == "page_view"]
    assert [b["url"].removeprefix(demo_url) for b in views] == visited
    assert len({b["event_id"] for b in views}) == len(views)
    assert all(b["visitor_id"] == visitor for b in views)
    assert all(DWELL_S * 1000 * 0.8 <= b["dwell_ms"] < 60_000 for b in views), views
    assert views[1]["referrer"] == demo_url + "/"
    assert all(b["context"]["user_agent"] and b["title"] for b in views)

    # Every event once: the page views, a touchpoint, a feedback and the identify.
    expected = len(views) + 3
    last: list[Any] = []

    def counted() -> Any:
        last[:] = [eng.http.get(f"/v1/visitors/{user}")]
        ok = last[0].status_code == 200 and last[0].json().get("events") == expected
        return last[0].json() if ok else None

    try:
        record = wait_until(counted, 30, f"the engine to count {expected} events of {user}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer {last[0].text}") from None
    assert record["top"]["persona"] == PERSONA
    assert record["feedback"]["nps"] == 9
    assert visitor in record["merged_visitor_ids"]
    time.sleep(2)
    assert eng.http.get(f"/v1/visitors/{visitor}").json()["events"] == expected

    for shot in (before, after, dashboard):
        width, height = png_size(shot)
        assert width >= 1000 and height >= 600, (shot, width, height)
        assert shot.stat().st_size > 20_000, f"{shot} looks empty ({shot.stat().st_size} bytes)"
