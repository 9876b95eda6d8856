"""``persona-stream simulate``: traffic of simulated visitors with known personas."""

from __future__ import annotations

import argparse
import sys

from stream_app.settings import Settings

NAME = "simulate"
HELP = "generate simulated visitors (known personas) as JSONL, over HTTP or into Kafka"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument(
        "--events-per-visitor", type=float, default=8.0, help="mean events per visitor"
    )
    parser.add_argument("--labelled-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sink", choices=["jsonl", "http", "kafka"], default="jsonl")
    parser.add_argument("--out", default="-", help="JSONL file for --sink jsonl ('-' = stdout)")
    parser.add_argument("--url", default=None, help="collector base URL for --sink http")
    parser.add_argument(
        "--write-key",
        default=None,
        help="write key for --sink http (default: the first of PERSONA_WRITE_KEYS)",
    )
    parser.add_argument(
        "--rate", type=float, default=0, help="events per second (0 = as fast as possible)"
    )
    parser.add_argument("--truth", default=None, help="write visitor_id,persona CSV here")
    parser.add_argument(
        "--catalog", default=None, help="catalog YAML (default PERSONA_CATALOG_PATH)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    import csv
    import time

    from models.catalog import Catalog
    from models.simulator import Simulator
    from stream_app import simulate_sinks

    if args.visitors < 0 or args.events_per_visitor < 1 or args.rate < 0:
        sys.stderr.write("--visitors and --rate must be >= 0, --events-per-visitor >= 1\n")
        return 2
    if not 0.0 <= args.labelled_fraction <= 1.0:
        sys.stderr.write("--labelled-fraction must be between 0 and 1\n")
        return 2
    catalog = Catalog.load(args.catalog or settings.catalog_path)
    sim = Simulator(
        catalog,
        seed=args.seed,
        labelled_fraction=args.labelled_fraction,
        events_per_visitor=args.events_per_visitor,
    )
    events = sim.stream(args.visitors)
    start = time.monotonic()
    if args.sink == "jsonl":
        if args.out == "-":
            sent = simulate_sinks.to_jsonl(events, sys.stdout, args.rate)
        else:
            with open(args.out, "w", encoding="utf-8") as out:
                sent = simulate_sinks.to_jsonl(events, out, args.rate)
    elif args.sink == "http":
        url = args.url or f"http://{settings.api_host}:{settings.api_port}"
        key = args.write_key
        if key is None and settings.write_keys:
            key = settings.write_keys[0].get_secret_value()
        sent = simulate_sinks.to_http(events, url, args.rate, write_key=key)
    else:
        sent = simulate_sinks.to_kafka(events, settings, args.rate)
    if args.truth:
        with open(args.truth, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["visitor_id", "persona"])
            writer.writerows(sim.truth.items())
    elapsed = time.monotonic() - start
    rate = sent / max(elapsed, 1e-9)
    sys.stderr.write(
        f"simulated {args.visitors} visitors, {sent} events in {elapsed:.1f}s ({rate:.0f}/s)\n"
    )
    return 0
