"""Cost of location at the edge, in-process: the IP database and the collector's step.

    .venv/bin/python bench/bench_geo.py [--n 200000]

Prints µs per call (median of 5 repeats) for: the raw ``iptocc`` lookup, our
``OfflineDatabase.lookup`` (address object in, ``Location`` out), and the collector's
per-event step (``RequestLocation.fill``) for a single event and per event of a batch of
500, with the country from a CDN header, from the peer's IP, or already in the event.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.datastructures import Headers

from stream_app.geo import Locator, RequestLocation
from stream_app.settings import Settings


def per_call_us(fn: Callable[[], object], n: int) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    from iptocc import country_code

    rng = random.Random(7)
    texts = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(4096)]
    addresses = [ipaddress.ip_address(t) for t in texts]
    locator = Locator.from_settings(Settings())
    assert locator.database is not None
    db = locator.database
    i = iter(range(10**12))

    def raw() -> object:
        return country_code(texts[next(i) & 4095])

    def ours() -> object:
        return db.lookup(addresses[next(i) & 4095])

    print(f"iptocc.country_code(str): {per_call_us(raw, args.n):.2f} µs per lookup")
    print(f"OfflineDatabase.lookup:   {per_call_us(ours, args.n):.2f} µs per lookup")

    cdn = Headers({"content-type": "application/json", "cf-ipcountry": "DE"})
    plain = Headers({"content-type": "application/json"})
    cases = {
        "CDN header": (cdn, "127.0.0.1", {}),
        "peer IP (8.8.8.8)": (plain, "8.8.8.8", {}),
        "country already sent": (cdn, "8.8.8.8", {"country": "FR"}),
    }
    for name, (headers, peer, ctx) in cases.items():

        def single(headers: Headers = headers, peer: str = peer, ctx: dict = ctx) -> object:
            event = {"type": "page_view", "context": dict(ctx)}
            return RequestLocation(locator, headers, peer).fill(event)

        def batch(headers: Headers = headers, peer: str = peer, ctx: dict = ctx) -> object:
            where = RequestLocation(locator, headers, peer)
            for _ in range(500):
                where.fill({"type": "page_view", "context": dict(ctx)})
            return where

        def baseline(ctx: dict = ctx) -> object:  # building the event dict alone
            return {"type": "page_view", "context": dict(ctx)}

        base = per_call_us(baseline, args.n)
        one = per_call_us(single, args.n) - base
        many = per_call_us(batch, max(1, args.n // 500)) / 500 - base
        print(f"collector, {name}: {one:.2f} µs for a single event, {many:.2f} µs per event of 500")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
