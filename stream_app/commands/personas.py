"""``persona-stream personas validate LABELLED.jsonl``: how well the personas separate.

The file holds native events (JSONL, as ``persona-stream simulate`` writes them); visitors
with a ``label`` event are the labelled sample. A share of them (``--holdout``) is kept
aside; the rest trains the model, then both the rules-only model and the trained model are
scored on the held-out visitors: per-persona precision/recall, calibration, the confusion
matrix and the separation between personas.
"""

from __future__ import annotations

import argparse
import sys

from stream_app.settings import Settings

NAME = "personas"
HELP = "validate the persona catalog against a labelled sample (precision, recall, calibration)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="personas_command", required=True, metavar="ACTION")
    validate = sub.add_parser("validate", help="report on a labelled sample of native events")
    validate.add_argument("file", help="JSONL of native events including label events")
    validate.add_argument("--catalog", default=None, help="catalog YAML (default: settings)")
    validate.add_argument("--holdout", type=float, default=0.3, help="share kept for testing")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from models.catalog import Catalog, CatalogError
    from stream_app.batch.labelled import load_labelled
    from stream_app.batch.report import render_validation, validation_report

    if not 0.0 < args.holdout < 1.0:
        sys.stderr.write("--holdout must be between 0 and 1\n")
        return 2
    try:
        catalog = Catalog.load(args.catalog or settings.catalog_path)
    except (OSError, CatalogError) as exc:
        sys.stderr.write(f"cannot load the catalog: {exc}\n")
        return 1
    try:
        visitors, problems = load_labelled(args.file, catalog)
    except OSError as exc:
        sys.stderr.write(f"{args.file}: cannot read: {exc}\n")
        return 1
    for problem in problems[:50]:
        sys.stderr.write(problem + "\n")
    if len(problems) > 50:
        sys.stderr.write(f"... and {len(problems) - 50} more problems\n")
    if len(visitors) < 2:
        sys.stderr.write("need at least 2 labelled visitors\n")
        return 1
    report = validation_report(catalog, visitors, args.holdout, settings.state_half_life_s)
    print(json.dumps(report, indent=2) if args.json else render_validation(report))
    return 0
