"""The demo site: one page per page category of the catalog, hero content per persona.

Nothing about personas is hard-coded: the pages come from the catalog's
``page_categories`` (prefix patterns such as ``/docs*``) and the hero content from each
persona's ``display`` (falling back to name and description). The page includes the
tracker from the API host; its script asks ``personaStream.assignment()`` every few
seconds and swaps the hero when the visitor's top persona is known.
"""

from __future__ import annotations

import html
import json
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from models.catalog import Catalog

NEUTRAL = {
    "headline": "Analytics for every team",
    "text": "Collect events, understand your visitors and act on it in real time.",
    "cta": "Explore the product",
    "cta_url": "/",
}
GLOB = set("*?[]")


def site_pages(catalog: Catalog) -> dict[str, str]:
    """Path -> page category, one page per prefix pattern such as ``/docs*``."""
    pages: dict[str, str] = {"/": catalog.page_category("/")}
    for rule in catalog.page_categories:
        path = rule.pattern.removesuffix("*").rstrip("/")
        if not path.startswith("/") or GLOB & set(path):
            continue
        if catalog.page_category(path) == rule.category:  # first match wins in the catalog
            pages.setdefault(path, rule.category)
    return pages


def nav_pages(pages: dict[str, str]) -> dict[str, str]:
    """The first page of each category, for the navigation bar."""
    first: dict[str, str] = {}
    for path, category in pages.items():
        first.setdefault(category, path)
    return {path: category for category, path in first.items()}


def title_of(category: str) -> str:
    words = category.replace("_", " ").replace("-", " ").split()
    return " ".join(w.upper() if len(w) <= 3 else w.capitalize() for w in words) or "Home"


def persona_content(catalog: Catalog) -> dict[str, dict[str, str]]:
    return {p.id: {"name": p.name, **p.display_content()} for p in catalog.personas}


def render_page(
    template: str,
    path: str,
    category: str,
    pages: dict[str, str],
    content: dict[str, dict[str, str]],
    api_url: str,
    write_key: str | None,
    min_probability: float,
) -> str:
    title = "Home" if path == "/" else title_of(category)
    nav = "\n".join(
        f'<a href="{html.escape(p)}"{" class=current" if p == path else ""}>'
        f"{html.escape('Home' if p == '/' else title_of(c))}</a>"
        for p, c in nav_pages(pages).items()
    )
    key_attr = f' data-write-key="{html.escape(write_key)}"' if write_key else ""
    # JSON inside <script>: "</" must not close the element.
    data = json.dumps(content).replace("</", "<\\/")
    values = {
        "title": html.escape(title),
        "category": html.escape(category),
        "nav": nav,
        "tracker": f'<script src="{html.escape(api_url.rstrip("/"))}/tracker.js"{key_attr}>'
        "</script>",
        "content_json": data,
        "min_probability": repr(min_probability),
        "headline": html.escape(NEUTRAL["headline"]),
        "text": html.escape(NEUTRAL["text"]),
        "cta": html.escape(NEUTRAL["cta"]),
        "cta_url": html.escape(NEUTRAL["cta_url"]),
    }
    out = template
    for name, value in values.items():
        out = out.replace("{{" + name + "}}", value)
    return out


def create_demo_app(
    catalog: Catalog,
    api_url: str,
    write_key: str | None = None,
    min_probability: float = 0.3,
) -> FastAPI:
    template = resources.files("stream_app").joinpath("static/demo.html").read_text("utf-8")
    pages = site_pages(catalog)
    content = persona_content(catalog)
    app = FastAPI(title="persona-stream demo site", docs_url=None, redoc_url=None)

    def page_route(path: str, category: str) -> None:
        body = render_page(
            template, path, category, pages, content, api_url, write_key, min_probability
        )

        async def page() -> HTMLResponse:
            return HTMLResponse(body)

        app.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse)

    for path, category in pages.items():
        page_route(path, category)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    return app
