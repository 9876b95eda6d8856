"""``persona-stream api``: the HTTP collector and lookup API."""

from __future__ import annotations

import argparse

from stream_app.settings import Settings

NAME = "api"
HTTP_PROTOCOL = "stream_app.api.server:HttpToolsProtocol"
HELP = "run the HTTP API (collector, lookups, health) with uvicorn (uvloop + httptools)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default PERSONA_API_HOST)")
    parser.add_argument("--port", type=int, help="port (default PERSONA_API_PORT)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes sharing the port (each with its own Kafka producer and Redis pool)",
    )
    parser.add_argument("--log-level", default="info")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    import uvicorn

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    # uvloop and httptools are pinned dependencies; naming them makes a missing one an error
    # at start-up instead of a silent fall-back to asyncio's loop and h11.
    options = {
        "host": args.host or settings.api_host,
        "port": args.port or settings.api_port,
        "log_level": args.log_level,
        "access_log": False,
        "loop": "uvloop",
        # uvicorn's httptools protocol writing a small response's headers and body in one
        # system call instead of two (stream_app/api/server.py); a string, so the --workers
        # processes import it too.
        "http": HTTP_PROTOCOL,
        # The collector reads X-Forwarded-For itself, only behind PERSONA_TRUSTED_PROXIES
        # (stream_app/geo/client_ip.py); uvicorn's own rewrite would believe 127.0.0.1.
        "proxy_headers": False,
    }
    if args.workers == 1:
        from stream_app.api.app import create_app

        uvicorn.run(create_app(settings), **options)
    else:  # each worker process imports the factory and reads the same environment
        uvicorn.run(
            "stream_app.api.app:create_app_from_env",
            factory=True,
            workers=args.workers,
            **options,
        )
    return 0
