"""``persona-stream catalog validate FILE``: every problem of a persona catalog, located."""

from __future__ import annotations

import argparse
import sys

from stream_app.settings import Settings

NAME = "catalog"
HELP = "validate a persona catalog YAML (every problem with its line and field)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    validate = sub.add_parser("validate", help="check a catalog file; exit 1 on problems")
    validate.add_argument("file", help="catalog YAML")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from models.catalog import Catalog, CatalogError

    try:
        catalog = Catalog.load(args.file)
    except OSError as exc:
        sys.stderr.write(f"{args.file}: cannot read: {exc.strerror or exc}\n")
        return 1
    except CatalogError as exc:
        for problem in exc.problems:
            sys.stderr.write(problem + "\n")
        sys.stderr.write(f"{len(exc.problems)} problem(s)\n")
        return 1
    print(
        f"{args.file}: OK — {len(catalog.personas)} personas, "
        f"{len(catalog.linking_rules)} linking rules, {len(catalog.page_categories)} page "
        f"categories, {len(catalog.journey)} journey rules"
    )
    return 0
