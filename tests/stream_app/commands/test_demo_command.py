"""``persona-stream demo`` builds the site from the catalog and serves it with uvicorn."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from stream_app.cli import build_parser
from stream_app.commands import demo
from stream_app.settings import Settings


def test_parser_knows_demo() -> None:
    args = build_parser().parse_args(["demo", "--port", "9100", "--api-url", "http://a:1"])
    assert (args.command, args.port, args.api_url, args.host) == (
        "demo",
        9100,
        "http://a:1",
        "127.0.0.1",
    )


@pytest.mark.parametrize(
    ("argv", "keys", "api", "key"),
    [
        (["demo"], [], "http://127.0.0.1:8000", None),
        (["demo", "--api-url", "http://a:1"], ["wk-1", "wk-2"], "http://a:1", "wk-1"),
        (["demo", "--write-key", "own"], ["wk-1"], "http://127.0.0.1:8000", "own"),
    ],
)
async def test_run_serves_the_site(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], keys: list[str], api: str, key: str | None
) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    args = build_parser().parse_args(argv)
    settings = Settings(write_keys=[SecretStr(k) for k in keys])
    assert demo.run(args, settings) == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 8100)
    transport = httpx.ASGITransport(app=served["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
        page = (await client.get("/pricing")).text
    tag = f'<script src="{api}/tracker.js"' + (f' data-write-key="{key}"' if key else "") + ">"
    assert tag in page
