"""Learning from unlabelled visitors: which soft examples a worker sends to the trainer.

The mapper decides when a visitor has something to teach (``PersonaMapper.soft_example``:
at 4, 8, 16 ... events, once the model has enough labels); this module adds the worker's
policy around it: the weight of an unlabelled visitor against a label, and a budget of
examples per second, so a busy worker does not flood the single-partition training topic
(the examples skipped over budget are simply not sent: the visitor's next one, at twice
its events, replaces whatever it taught before).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.mapper import PersonaMapper


@dataclass
class UnlabelledLearning:
    weight: float = 1.0  # an unlabelled visitor's weight against a label's (0: off)
    min_labels: int = 50  # labels the model needs before unlabelled visitors count
    max_per_s: float = 500.0  # soft examples per second this worker may send
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(default=0.0, init=False)
    _last: float | None = field(default=None, init=False)
    skipped: int = field(default=0, init=False)  # due but over budget

    def _take(self) -> bool:
        now = self.clock()
        if self._last is None:
            self._tokens = self.max_per_s  # a second's worth to start with
        else:
            elapsed = max(now - self._last, 0.0)
            self._tokens = min(self._tokens + elapsed * self.max_per_s, self.max_per_s)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.skipped += 1
        return False

    def example(
        self, mapper: PersonaMapper, state: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The visitor's state and its soft example, if one is due and within budget
        (else the state unchanged and None)."""
        if self.weight <= 0:
            return state, None
        new, example = mapper.soft_example(state, self.weight, self.min_labels)
        if example is None or not self._take():
            return state, None
        return new, example
