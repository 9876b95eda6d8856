"""``persona-stream demo``: a small website that includes the tracker and personalises itself."""

from __future__ import annotations

import argparse

from stream_app.settings import Settings

NAME = "demo"
HELP = "serve the demo website (tracker included from the API, hero banner by persona)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8100, help="port (default 8100)")
    parser.add_argument(
        "--api-url",
        default=None,
        help="the API as the browser reaches it (default http://PERSONA_API_HOST:PERSONA_API_PORT);"
        " its PERSONA_CORS_ORIGINS must list this site's origin",
    )
    parser.add_argument(
        "--write-key",
        default=None,
        help="write key for the tracker (default: the first of "
        "PERSONA_WRITE_KEYS, none when empty)",
    )
    parser.add_argument("--log-level", default="info")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from models.catalog import Catalog
    from stream_app.demo.site import create_demo_app

    api_url = args.api_url or f"http://{settings.api_host}:{settings.api_port}"
    write_key = args.write_key
    if write_key is None and settings.write_keys:
        write_key = settings.write_keys[0].get_secret_value()
    app = create_demo_app(Catalog.load(settings.catalog_path), api_url, write_key)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0
