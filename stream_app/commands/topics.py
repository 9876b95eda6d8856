"""``persona-stream topics``: create the contract topics when missing."""

from __future__ import annotations

import argparse
import asyncio

from stream_app.settings import Settings

NAME = "topics"
HELP = "create the Kafka topics of the contract if they are missing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for Kafka")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from stream_app.topics import contract_topics, ensure_topics

    created = asyncio.run(ensure_topics(settings, timeout_s=args.timeout))
    for spec in contract_topics(settings):
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name}: {state} ({spec.partitions} partitions {spec.config or ''})")
    return 0
