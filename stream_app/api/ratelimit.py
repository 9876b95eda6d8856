"""Token buckets per client IP and per key, in this API process (no I/O).

Each bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a request
takes one token. An empty bucket answers with the seconds until the next token, which the API
sends as ``Retry-After``. Buckets live in this process only: N API processes behind a load
balancer allow up to N times the configured rates in total (README, "Rate limits").

Memory is bounded: at most ``max_buckets`` buckets per limiter, the least recently used
dropped first (a dropped bucket comes back full, which only ever favours the client).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per name (an IP address or a key's id)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (use no limiter for no limit)")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, name: str) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[name] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(name)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` takes whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
