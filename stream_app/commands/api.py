"""``persona-stream api``: the HTTP collector and lookup API."""

from __future__ import annotations

import argparse

from stream_app.settings import Settings

NAME = "api"
HELP = "run the HTTP API (collector, lookups, health) with uvicorn"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default PERSONA_API_HOST)")
    parser.add_argument("--port", type=int, help="port (default PERSONA_API_PORT)")
    parser.add_argument("--log-level", default="info")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    import uvicorn

    from stream_app.api.app import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level=args.log_level,
        access_log=False,
    )
    return 0
