"""The demo site: pages from the catalog's page categories, hero content from its personas."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from models.catalog import Catalog
from stream_app.demo.site import NEUTRAL, create_demo_app, nav_pages, site_pages, title_of

SAMPLE = Path(__file__).resolve().parents[3] / "models" / "catalogs" / "b2b_saas.yaml"
API = "http://api.example:8000"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(SAMPLE)


@pytest.fixture
async def client(catalog: Catalog) -> AsyncIterator[httpx.AsyncClient]:
    app = create_demo_app(catalog, API, write_key='k"1')
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d") as c:
        yield c


def test_pages_follow_the_catalog(catalog: Catalog) -> None:
    pages = site_pages(catalog)
    assert pages["/"] == "home"
    assert pages["/docs"] == "docs" and pages["/pricing"] == "pricing"
    assert pages["/case-studies"] == pages["/customers"] == "case_studies"
    assert all(catalog.page_category(path) == cat for path, cat in pages.items())
    categories = {r.category for r in catalog.page_categories}
    assert set(pages.values()) == categories
    nav = nav_pages(pages)
    assert len(nav) == len(categories) and "/customers" in nav and "/case-studies" not in nav


def test_glob_patterns_are_not_pages() -> None:
    c = Catalog.from_dict(
        {
            "personas": [{"id": "a", "name": "A"}],
            "page_categories": [
                {"pattern": "*/docs*", "category": "docs"},
                {"pattern": "/shop/[ab]*", "category": "shop"},
                {"pattern": "/faq*", "category": "faq"},
            ],
        }
    )
    assert site_pages(c) == {"/": "other", "/faq": "faq"}


def test_titles() -> None:
    assert title_of("case_studies") == "Case Studies"
    assert title_of("api") == "API"


async def test_every_page_renders_with_tracker_and_catalog_content(
    client: httpx.AsyncClient, catalog: Catalog
) -> None:
    for path, category in site_pages(catalog).items():
        r = await client.get(path)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"], path
        assert f'data-category="{category}"' in r.text
        assert f'<script src="{API}/tracker.js" data-write-key="k&quot;1"></script>' in r.text
        assert f">{NEUTRAL['headline']}</h1>" in r.text  # neutral until the persona is known
        raw = re.search(r'id="persona-content">(.*?)</script>', r.text, re.S)
        assert raw is not None
        content = json.loads(raw.group(1))
        assert set(content) == set(catalog.persona_ids)
        for p in catalog.personas:
            assert content[p.id] == {"name": p.name, **p.display_content()}


async def test_unknown_page_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nope")).status_code == 404
    assert (await client.get("/favicon.ico")).status_code == 204


async def test_content_cannot_close_the_script_element() -> None:
    c = Catalog.from_dict({"personas": [{"id": "a", "name": "</script><b>x", "description": "d"}]})
    app = create_demo_app(c, API)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d") as h:
        page = (await h.get("/")).text
    assert "</script><b>" not in page
    assert "data-write-key" not in page
