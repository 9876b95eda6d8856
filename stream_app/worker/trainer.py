"""Online training from labels (and unlabelled visitors' soft examples), and publication
of versioned model snapshots.

Only one trainer learns at a time: training examples go to a topic with exactly ONE
partition, and Kafka's consumer-group protocol gives a partition to one member of the
group. After a rebalance the new owner continues from the latest published snapshot.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any

from models.mapper import PersonaMapper
from stream_app.worker.model_holder import ModelHolder

log = logging.getLogger(__name__)
SEEN_EVENTS = 200_000


class Trainer:
    def __init__(self, holder: ModelHolder, every_labels: int, every_s: float) -> None:
        self.holder = holder
        self.every_labels = every_labels
        self.every_s = every_s
        self.mapper: PersonaMapper | None = None
        self.pending = 0  # labels learned since the last publication
        self.soft_pending = 0  # soft examples learned since then (published on the timer)
        self.soft_learned = 0
        self.last_publish = time.monotonic()
        # A replayed batch of the events path sends its training examples again: each
        # label event is learned once (8-byte digests of the last SEEN_EVENTS event ids).
        self.seen: OrderedDict[bytes, None] = OrderedDict()
        self.duplicates = 0

    def first_time(self, event_id: Any) -> bool:
        if not event_id:
            return True
        digest = hashlib.blake2b(str(event_id).encode(), digest_size=8).digest()
        if digest in self.seen:
            self.duplicates += 1
            return False
        self.seen[digest] = None
        if len(self.seen) > SEEN_EVENTS:
            self.seen.popitem(last=False)
        return True

    def _ensure(self) -> PersonaMapper:
        if self.mapper is None or self.mapper.version < self.holder.version:
            # Start from (or catch up with) the newest published model.
            self.mapper = PersonaMapper.from_snapshot(
                self.holder.mapper.snapshot(), self.holder.catalog
            )
        return self.mapper

    def learn(self, examples: list[dict[str, Any]]) -> None:
        mapper = self._ensure()
        for ex in examples:
            self._learn_one(mapper, ex)

    async def learn_yielding(self, examples: list[dict[str, Any]], slice_s: float = 0.005) -> None:
        """:meth:`learn`, giving the event loop back every ``slice_s`` of CPU: a label costs
        about a millisecond, and the events path shares the loop (a batch of 200 labels
        learned at once held every event for a quarter of a second)."""
        mapper = self._ensure()
        started = time.perf_counter()
        for ex in examples:
            self._learn_one(mapper, ex)
            if time.perf_counter() - started >= slice_s:
                await asyncio.sleep(0)
                started = time.perf_counter()
                mapper = self._ensure()  # a newer model may have arrived meanwhile

    def _learn_one(self, mapper: PersonaMapper, ex: dict[str, Any]) -> None:
        if not self.first_time(ex.get("event_id")):
            return
        try:
            if "soft" in ex:
                mapper.learn_soft(ex["soft"])
                self.soft_pending += 1
                self.soft_learned += 1
                return
            mapper.learn(ex["state"], ex["persona"], float(ex.get("weight", 1.0)))
            self.pending += 1
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("skipping training example %s: %s", ex.get("event_id"), exc)

    def drift(self) -> dict[str, dict[str, bool]]:
        """ADWIN drift flags of the model being trained (empty before the first label)."""
        return self.mapper.drift() if self.mapper is not None else {}

    def due(self) -> bool:
        """A model is due after ``every_labels`` labels, or ``every_s`` after the last one
        if anything was learned since (soft examples alone wait for the timer: each
        publication costs every worker a cold cache)."""
        if self.pending >= self.every_labels:
            return True
        learned = self.pending or self.soft_pending
        return bool(learned) and time.monotonic() - self.last_publish >= self.every_s

    def snapshot(self) -> bytes:
        """Bump the version and serialise; the caller publishes it."""
        mapper = self._ensure()
        mapper.version += 1
        self.pending = 0  # labels learned since the last publication
        self.soft_pending = 0  # soft examples learned since then (published on the timer)
        self.soft_learned = 0
        self.last_publish = time.monotonic()
        log.info("publishing model version %d (%d labels)", mapper.version, mapper.n_labels)
        return mapper.snapshot()
