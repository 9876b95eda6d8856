"""A worker's live numbers for the dashboard, published to Redis every few seconds."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any


class LiveStats:
    def __init__(self) -> None:
        self.events_total = 0
        self.dead_letters_total = 0
        self.duplicates_total = 0
        self.lag_messages = 0  # set by the lag monitor: messages not yet committed
        self.visitors: dict[str, int] = {}  # set by the persona-mix count: visitors by top
        self._window_events = 0
        self._window_latency: list[float] = []
        self._window_top: Counter[str] = Counter()
        self._window_started = time.monotonic()

    def record(self, result: Any, latencies_s: list[float]) -> None:
        self.events_total += result.processed
        self.dead_letters_total += len(result.dead_letters)
        self.duplicates_total += result.duplicates
        self._window_events += result.processed
        self._window_latency.extend(latencies_s)
        for w in result.writes:
            self._window_top[w.record["top"]["persona"]] += 1

    def snapshot(self, model_version: int) -> dict[str, float]:
        """Totals, plus rates and latency percentiles over the window since the last call."""
        now = time.monotonic()
        elapsed = max(now - self._window_started, 1e-9)
        lat = sorted(self._window_latency)
        out: dict[str, float] = {
            "events_total": self.events_total,
            "dead_letters_total": self.dead_letters_total,
            "duplicates_total": self.duplicates_total,
            "events_per_s": self._window_events / elapsed,
            "e2r_p50_s": lat[len(lat) // 2] if lat else 0.0,
            "e2r_p99_s": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else 0.0,
            "model_version": model_version,
            "lag_messages": self.lag_messages,
            "reported_at": time.time(),
        }
        for persona, n in self._window_top.items():
            out[f"top:{persona}"] = n
        for persona, n in self.visitors.items():
            out[f"visitors:{persona}"] = n
        self._window_events = 0
        self._window_latency = []
        self._window_top = Counter()
        self._window_started = now
        return out
