"""What the access check costs per request: the app-wide guard (route policy, per-IP and
per-key token buckets, key lookup by SHA-256 digest plus a constant-time compare), with 102
configured keys. Prints microseconds per request; run: .venv/bin/python bench/bench_auth.py
"""

from __future__ import annotations

import asyncio
import timeit
from typing import Any

from pydantic import SecretStr
from starlette.requests import Request

from stream_app.api.auth import Access
from stream_app.metrics import ApiMetrics
from stream_app.settings import Settings


class Route:
    path = "/v1/events"


def main(n: int = 20_000) -> None:
    settings = Settings(
        write_keys=[SecretStr(f"w{i}") for i in range(100)],
        read_keys=[SecretStr("r")],
        admin_keys=[SecretStr("a")],
        rate_limit_ip_burst=10**9,
        rate_limit_key_burst=10**9,
    )
    access = Access(settings, ApiMetrics())
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/events",
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer w42")],
        "route": Route(),
        "client": ("203.0.113.1", 5000),
    }

    async def run() -> None:
        for _ in range(n):
            await access.guard(Request(scope))

    for _ in range(3):
        started = timeit.default_timer()
        asyncio.run(run())
        print(f"guard: {(timeit.default_timer() - started) / n * 1e6:.1f} us per request")
    lookups = timeit.timeit(lambda: access.keys.lookup("w42"), number=100_000)
    print(f"key lookup alone: {lookups / 100_000 * 1e6:.2f} us")


if __name__ == "__main__":
    main()
