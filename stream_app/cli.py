"""``persona-stream`` command line: one sub-command per module in ``stream_app.commands``.

Each command module exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args, settings) -> int``; heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Module names under stream_app.commands, in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "worker",
    "api",
    "topics",
    "simulate",
    "catalog",
    "personas",
    "map_crm",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persona-stream",
        description="Real-time persona engine on Kafka and Redis.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS:
        module = importlib.import_module(f"stream_app.commands.{module_name}")
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from stream_app.settings import Settings

    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args._run(args, Settings()) or 0)


if __name__ == "__main__":
    sys.exit(main())
