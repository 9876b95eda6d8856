"""``persona-stream map-crm customers.csv --out assignments.csv``: batch reverse mapping."""

from __future__ import annotations

import argparse
import sys

from stream_app.settings import Settings

NAME = "map-crm"
HELP = "assign every CRM customer row its personas (streaming, bad rows skipped and reported)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="customers CSV (columns: see models/crm.py)")
    parser.add_argument("--out", required=True, help="assignments CSV ('-' = stdout)")
    parser.add_argument("--catalog", default=None, help="catalog YAML (default: settings)")
    parser.add_argument("--model", default=None, help="model snapshot file (default: rules only)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from models.catalog import Catalog, CatalogError
    from models.mapper import PersonaMapper
    from stream_app.batch.map_crm import map_csv

    try:
        catalog = Catalog.load(args.catalog or settings.catalog_path)
    except (OSError, CatalogError) as exc:
        sys.stderr.write(f"cannot load the catalog: {exc}\n")
        return 1
    if args.model:
        try:
            with open(args.model, "rb") as f:
                mapper = PersonaMapper.from_snapshot(f.read(), catalog)
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"cannot load the model {args.model}: {exc}\n")
            return 1
    else:
        mapper = PersonaMapper(catalog, half_life_s=settings.state_half_life_s)
    try:
        stats = map_csv(mapper, args.file, args.out, progress=None if args.quiet else sys.stderr)
    except OSError as exc:
        sys.stderr.write(f"cannot read or write: {exc}\n")
        return 1
    except ValueError as exc:
        sys.stderr.write(f"{args.file}: {exc}\n")
        return 1
    sys.stderr.write(
        f"mapped {stats.mapped} rows, skipped {stats.skipped} bad rows "
        f"in {stats.seconds:.1f}s ({stats.rows_per_s:.0f} rows/s)\n"
    )
    return 0
