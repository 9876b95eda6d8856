"""tracker.js in headless Chromium against a routed site and API (no server, no engine).

The site is ``http://site.test`` (not a secure context, so ``crypto.randomUUID`` is absent
and the tracker's fallback is used); the API ``http://api.test`` is answered by Playwright
routes. ``navigator.sendBeacon`` is replaced by a recorder (sessionStorage, so it survives
navigations) and ``document.visibilityState`` is driven by the test.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest

from stream_app.events.validate import validate_event
from tests.chromium import launch

TRACKER = resources.files("stream_app").joinpath("static/tracker.js").read_text("utf-8")
SITE = "http://site.test"
API = "http://api.test"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
PAGE = (
    "<!doctype html><html><head><title>{title}</title>"
    f'<script src="{API}/tracker.js" data-write-key="k1"{{attrs}}></script></head>'
    '<body><a id="next" href="/other">next</a></body></html>'
)
GPC_ON = 'Object.defineProperty(Navigator.prototype, "globalPrivacyControl", {get: () => true});'

HARNESS = """
(() => {
  const log = () => JSON.parse(sessionStorage.getItem("beacons") || "[]");
  navigator.sendBeacon = (url, body) => {
    sessionStorage.setItem("beacons", JSON.stringify([...log(), {url: String(url), body}]));
    return true;
  };
  let vis = "__START__";
  Object.defineProperty(Document.prototype, "visibilityState", {get: () => vis});
  Object.defineProperty(Document.prototype, "hidden", {get: () => vis === "hidden"});
  window.setVisibility = (v) => { vis = v; document.dispatchEvent(new Event("visibilitychange")); };
  window.beacons = () => log().map((b) => ({endpoint: b.url, event: JSON.parse(b.body)}));
})();
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        try:
            yield b
        finally:
            b.close()


class Site:
    """A browser context with the routed site and API; records what reaches /v1/events."""

    def __init__(
        self,
        browser: Any,
        start: str = "visible",
        script_attrs: str = "",
        init_script: str = "",
        **options: Any,
    ) -> None:
        self.context = browser.new_context(**options)
        self.context.add_init_script(HARNESS.replace("__START__", start) + init_script)
        self.script_attrs = script_attrs
        self.lookups: list[str] = []
        self.posts: list[dict[str, Any]] = []
        self.lookup: tuple[int, Any] = (404, {"error": "unknown visitor"})
        self.context.route(f"{SITE}/**", self._site)
        self.context.route(f"{API}/**", self._api)
        self.page = self.context.new_page()

    def _site(self, route: Any) -> None:
        title = "Other" if route.request.url.startswith(f"{SITE}/other") else "Docs"
        body = PAGE.format(title=title, attrs=self.script_attrs)
        route.fulfill(status=200, content_type="text/html", body=body)

    def _api(self, route: Any) -> None:
        req = route.request
        cors = {"Access-Control-Allow-Origin": "*"}
        if req.url.startswith(f"{API}/tracker.js"):
            route.fulfill(status=200, content_type="text/javascript", body=TRACKER)
        elif req.url.startswith(f"{API}/v1/events"):
            body = json.loads(req.post_data)
            self.posts.append({"endpoint": req.url, "ctype": req.headers["content-type"], **body})
            route.fulfill(status=202, json={"accepted": 1, "rejected": []}, headers=cors)
        elif req.url.startswith(f"{API}/v1/visitors/"):
            self.lookups.append(req.url)
            status, body = self.lookup
            if status == 0:
                route.abort()
            else:
                route.fulfill(status=status, json=body, headers=cors)
        else:
            route.fulfill(status=404, body="")

    def beacons(self) -> list[dict[str, Any]]:
        """The events handed to sendBeacon (checking they all went to the keyed endpoint)."""
        sent = self.page.evaluate("beacons()")
        assert all(b["endpoint"] == f"{API}/v1/events?writeKey=k1" for b in sent)
        return [b["event"] for b in sent]

    def hide(self) -> None:
        self.page.evaluate("setVisibility('hidden')")

    def show(self) -> None:
        self.page.evaluate("setVisibility('visible')")


@pytest.fixture
def site(browser: Any) -> Iterator[Site]:
    s = Site(browser)
    try:
        yield s
    finally:
        s.context.close()


def test_one_page_view_on_first_hide_with_visible_dwell(site: Site) -> None:
    site.page.goto(f"{SITE}/docs?utm_source=newsletter&utm_campaign=q4")
    assert site.page.evaluate("typeof crypto.randomUUID") == "undefined"  # fallback path
    time.sleep(0.6)
    site.hide()
    (view,) = site.beacons()
    assert view["type"] == "page_view" and UUID4.match(view["event_id"])
    assert UUID4.match(view["visitor_id"]) and RFC3339.match(view["ts"])
    assert view["url"] == f"{SITE}/docs?utm_source=newsletter&utm_campaign=q4"
    assert view["referrer"] == "" and view["title"] == "Docs"
    assert view["context"]["user_agent"] and view["context"]["locale"]
    assert 500 <= view["dwell_ms"] < 2500, view["dwell_ms"]
    site.show()  # back to the tab and away again: the same view is not sent twice
    time.sleep(0.2)
    site.hide()
    site.page.goto(f"{SITE}/other")  # pagehide of the already-sent view sends nothing
    assert len(site.beacons()) == 1


@pytest.mark.parametrize(
    ("zone", "offset"), [("Asia/Kolkata", "+05:30"), ("America/Lima", "-05:00")]
)
def test_events_pass_the_collector_validation_in_any_time_zone(
    browser: Any, zone: str, offset: str
) -> None:
    s = Site(browser, timezone_id=zone, locale="de-CH")
    try:
        s.page.goto(f"{SITE}/docs")
        s.page.evaluate("personaStream.feedback('nps', 10)")
        s.hide()
        (view,) = s.beacons()
        assert view["ts"].endswith(offset) and view["context"]["locale"] == "de-CH"
        for event in (view, s.posts[0]):
            event = {k: v for k, v in event.items() if k not in ("endpoint", "ctype")}
            assert validate_event(event)["event_id"] == event["event_id"]
    finally:
        s.context.close()


def test_hidden_time_is_not_counted(browser: Any) -> None:
    s = Site(browser, start="hidden")  # e.g. opened in a background tab
    try:
        s.page.goto(f"{SITE}/docs")
        time.sleep(0.8)
        s.show()
        time.sleep(0.3)
        s.hide()
        (view,) = s.beacons()
        assert 250 <= view["dwell_ms"] < 750, view["dwell_ms"]
    finally:
        s.context.close()


def test_leaving_the_page_sends_its_view_and_the_next_page_starts_a_new_one(site: Site) -> None:
    site.page.goto(f"{SITE}/docs")
    first_visitor = site.page.evaluate("personaStream.visitorId()")
    site.page.click("#next")
    site.page.wait_for_url(f"{SITE}/other")
    site.hide()
    docs, other = site.beacons()
    assert [docs["url"], other["url"]] == [f"{SITE}/docs", f"{SITE}/other"]
    assert other["referrer"] == f"{SITE}/docs" and other["title"] == "Other"
    assert docs["event_id"] != other["event_id"]
    assert docs["visitor_id"] == other["visitor_id"] == first_visitor


def test_page_starts_a_new_view_in_single_page_apps(site: Site) -> None:
    site.page.goto(f"{SITE}/docs")
    site.page.evaluate("history.pushState({}, '', '/pricing')")
    site.page.evaluate("personaStream.page()")
    site.hide()
    first, second = site.beacons()
    assert first["url"] == f"{SITE}/docs" and second["url"] == f"{SITE}/pricing"
    assert second["referrer"] == f"{SITE}/docs"
    assert first["event_id"] != second["event_id"]


def test_visitor_id_is_first_party_and_survives(site: Site) -> None:
    site.page.goto(f"{SITE}/docs")
    vid = site.page.evaluate("personaStream.visitorId()")
    cookies = {c["name"]: c for c in site.context.cookies(SITE)}
    assert cookies["ps_vid"]["value"] == vid and cookies["ps_vid"]["sameSite"] == "Lax"
    assert site.page.evaluate("localStorage.getItem('ps_vid')") == vid
    site.context.clear_cookies()
    site.page.reload()
    assert site.page.evaluate("personaStream.visitorId()") == vid  # from localStorage
    assert {c["name"] for c in site.context.cookies(SITE)} == {"ps_vid"}
    site.page.evaluate("localStorage.clear()")
    site.page.reload()
    assert site.page.evaluate("personaStream.visitorId()") == vid  # from the cookie


def test_assignment_resolves_to_the_lookup_or_null(site: Site) -> None:
    site.page.goto(f"{SITE}/docs")
    assert site.page.evaluate("personaStream.assignment()") is None  # 404
    record = {"visitor_id": "x", "top": {"persona": "tech_evaluator", "probability": 0.8}}
    site.lookup = (200, record)
    assert site.page.evaluate("personaStream.assignment()") == record
    site.lookup = (503, {"error": "store unavailable"})
    assert site.page.evaluate("personaStream.assignment()") is None
    site.lookup = (0, None)  # network error
    assert site.page.evaluate("personaStream.assignment()") is None
    vid = site.page.evaluate("personaStream.visitorId()")
    assert site.lookups and all(  # the write key goes along: the API needs one
        u == f"{API}/v1/visitors/{vid}?writeKey=k1" for u in site.lookups
    )


def test_touchpoint_feedback_identify(site: Site) -> None:
    site.page.goto(f"{SITE}/docs")
    results = site.page.evaluate(
        """async () => [
          await personaStream.touchpoint({channel: "form", action: "submit", campaign: "q4"}),
          await personaStream.feedback("csat", 5, {touchpoint: "support", comment: "quick"}),
          await personaStream.identify("u-7", {job_title: "CFO"}),
          await personaStream.touchpoint({channel: "email", action: "open"}),
        ]"""
    )
    assert results == [True, True, True, True]
    touch, feedback, identify, after = site.posts
    assert all(p["endpoint"] == f"{API}/v1/events?writeKey=k1" for p in site.posts)
    assert all(p["ctype"].startswith("text/plain") for p in site.posts)  # no preflight
    assert [touch["type"], feedback["type"], identify["type"]] == [
        "touchpoint",
        "feedback",
        "identify",
    ]
    assert (touch["channel"], touch["action"], touch["campaign"]) == ("form", "submit", "q4")
    assert (feedback["kind"], feedback["score"], feedback["touchpoint"]) == ("csat", 5, "support")
    assert identify["user_id"] == "u-7" and identify["traits"] == {"job_title": "CFO"}
    assert "user_id" not in touch and after["user_id"] == "u-7"
    assert len({p["event_id"] for p in site.posts}) == 4


def sent_events(site: Site) -> list[dict[str, Any]]:
    """Everything that reached the API: beacons and fetch posts, without the test's fields."""
    posts = [{k: v for k, v in p.items() if k not in ("endpoint", "ctype")} for p in site.posts]
    return site.beacons() + posts


def test_gpc_sends_nothing_and_sets_no_cookie(browser: Any) -> None:
    s = Site(browser, init_script=GPC_ON)
    try:
        s.page.goto(f"{SITE}/docs")
        assert s.page.evaluate("navigator.globalPrivacyControl") is True
        results = s.page.evaluate(
            """async () => [
              await personaStream.touchpoint({channel: "form", action: "submit"}),
              await personaStream.identify("u-1", {email: "a@example.com"}),
              await personaStream.assignment(),
              personaStream.optedOut(),
            ]"""
        )
        s.hide()
        s.page.goto(f"{SITE}/other")
        s.hide()
        assert results == [False, False, None, True]
        assert sent_events(s) == [] and s.lookups == []
        assert "ps_vid" not in {c["name"] for c in s.context.cookies(SITE)}
        assert s.page.evaluate("localStorage.getItem('ps_vid')") is None
    finally:
        s.context.close()


def test_gpc_forgets_a_visitor_seen_before_with_one_opt_out(browser: Any) -> None:
    s = Site(browser)
    try:
        s.page.goto(f"{SITE}/docs")
        vid = s.page.evaluate("personaStream.visitorId()")
        s.hide()
        assert len(s.beacons()) == 1  # tracked as usual before GPC was switched on
        s.context.add_init_script(GPC_ON)
        s.page.goto(f"{SITE}/other")
        s.page.reload()
        s.hide()
        (view, consent) = sent_events(s)
        assert view["type"] == "page_view"
        assert (consent["type"], consent["status"], consent["source"]) == (
            "consent",
            "opt_out",
            "gpc",
        )
        assert consent["visitor_id"] == vid
        assert validate_event(consent)["status"] == "opt_out"
        assert "ps_vid" not in {c["name"] for c in s.context.cookies(SITE)}
    finally:
        s.context.close()


def test_gpc_is_configurable(browser: Any) -> None:
    s = Site(browser, script_attrs=' data-respect-gpc="false"', init_script=GPC_ON)
    try:
        s.page.goto(f"{SITE}/docs")
        assert s.page.evaluate("personaStream.optedOut()") is False
        s.hide()
        (view,) = s.beacons()
        assert view["type"] == "page_view"
    finally:
        s.context.close()


def test_opt_out_then_opt_in(site: Site) -> None:
    site.page.goto(f"{SITE}/docs")
    vid = site.page.evaluate("personaStream.visitorId()")
    assert site.page.evaluate("personaStream.optOut()") is True
    assert site.page.evaluate("personaStream.touchpoint({channel: 'chat'})") is False
    site.hide()  # the view of an opted-out visitor is not sent
    site.page.reload()
    site.hide()
    assert site.page.evaluate("personaStream.optedOut()") is True
    (consent,) = sent_events(site)
    assert (consent["type"], consent["status"], consent["source"]) == (
        "consent",
        "opt_out",
        "banner",
    )
    assert consent["visitor_id"] == vid and validate_event(consent)["visitor_id"] == vid
    assert "ps_vid" not in {c["name"] for c in site.context.cookies(SITE)}
    assert site.page.evaluate("personaStream.optIn()") is True
    opt_in = site.posts[-1]
    assert (opt_in["type"], opt_in["status"]) == ("consent", "opt_in")
    assert opt_in["visitor_id"] != vid  # a fresh visitor: the old one was forgotten
    assert site.page.evaluate("personaStream.touchpoint({channel: 'chat'})") is True
