"""``persona-stream worker``: the faust stream processor."""

from __future__ import annotations

import argparse

from stream_app.settings import Settings

NAME = "worker"
HELP = "run a faust worker that consumes events and keeps personas current in Redis"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loglevel", default="info", help="faust log level")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from faust import Worker

    from stream_app.topics import ensure_topics
    from stream_app.worker.app import create_app

    asyncio.run(ensure_topics(settings))
    app = create_app(settings)
    Worker(app, loglevel=args.loglevel).execute_from_commandline()
    return 0
