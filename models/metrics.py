"""Progressive validation: every label is first predicted, then learned.

Keeps log loss, accuracy and expected calibration error (10 bins on the top-1
probability) over all labels and over a recent window. Drift is flagged with river's
ADWIN on two signals: the per-label log loss, overall and per labelled persona (the model
got worse), and, per persona, the indicator "this label is persona c" (the persona mix
changed). :meth:`ProgressiveMetrics.drift` reports a flag as raised for ``window`` labels
after ADWIN detected a change, so a scrape every few seconds sees it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from river import drift

BINS = 10
EPS = 1e-12


class ProgressiveMetrics:
    def __init__(self, personas: list[str] | None = None, window: int = 500) -> None:
        self.n = 0
        self.log_loss_sum = 0.0
        self.correct = 0
        self.bin_count = [0] * BINS
        self.bin_conf = [0.0] * BINS
        self.bin_hits = [0] * BINS
        self.recent: deque[tuple[float, int]] = deque(maxlen=window)
        self.loss_drift = drift.ADWIN(delta=0.002)
        self.drift_detected = False
        self.drifts = 0
        self.mix_drift = {p: drift.ADWIN(delta=0.002) for p in personas or []}
        self.mix_flags = dict.fromkeys(personas or [], False)
        self.mix_drifts = 0
        self.window = window
        self.persona_loss = {p: drift.ADWIN(delta=0.002) for p in personas or []}
        self.last_drift: dict[tuple[str, str], int] = {}

    COUNTERS = ("n", "log_loss_sum", "correct", "bin_count", "bin_conf", "bin_hits", "drifts")

    def to_dict(self) -> dict[str, Any]:
        """Counters as JSON data (ADWIN windows are not kept: they restart after a restore)."""
        return {
            **{k: getattr(self, k) for k in self.COUNTERS},
            "mix_drifts": self.mix_drifts,
            "recent": [list(x) for x in self.recent],
        }

    @classmethod
    def from_dict(cls, doc: Any, personas: list[str]) -> ProgressiveMetrics:
        m = cls(personas)
        try:
            m.n, m.correct, m.drifts = int(doc["n"]), int(doc["correct"]), int(doc["drifts"])
            m.mix_drifts = int(doc["mix_drifts"])
            m.log_loss_sum = float(doc["log_loss_sum"])
            m.bin_count = [int(x) for x in doc["bin_count"]][:BINS]
            m.bin_conf = [float(x) for x in doc["bin_conf"]][:BINS]
            m.bin_hits = [int(x) for x in doc["bin_hits"]][:BINS]
            m.recent.extend((float(loss), int(hit)) for loss, hit in doc["recent"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad validation counters in snapshot: {exc!r}") from None
        if not (len(m.bin_count) == len(m.bin_conf) == len(m.bin_hits) == BINS):
            raise ValueError("bad validation counters in snapshot: calibration bins")
        return m

    def update(self, proba: dict[str, float], truth: str) -> dict[str, Any]:
        p_true = max(proba.get(truth, 0.0), EPS)
        loss = -math.log(p_true)
        top = max(proba, key=proba.__getitem__)
        hit = int(top == truth)
        conf = proba[top]
        b = min(int(conf * BINS), BINS - 1)
        self.n += 1
        self.log_loss_sum += loss
        self.correct += hit
        self.bin_count[b] += 1
        self.bin_conf[b] += conf
        self.bin_hits[b] += hit
        self.recent.append((loss, hit))
        self.loss_drift.update(loss)
        self.drift_detected = bool(self.loss_drift.drift_detected)
        self.drifts += int(self.drift_detected)
        if self.drift_detected:
            self.last_drift[("log_loss", "all")] = self.n
        loss_detector = self.persona_loss.get(truth)
        if loss_detector is not None:
            loss_detector.update(loss)
            if loss_detector.drift_detected:
                self.last_drift[("log_loss", truth)] = self.n
        for persona, detector in self.mix_drift.items():
            detector.update(float(persona == truth))
            self.mix_flags[persona] = bool(detector.drift_detected)
            self.mix_drifts += int(self.mix_flags[persona])
            if self.mix_flags[persona]:
                self.last_drift[("persona_mix", persona)] = self.n
        return {
            "log_loss": loss,
            "correct": bool(hit),
            "predicted": top,
            "confidence": conf,
            "drift": self.drift_detected or any(self.mix_flags.values()),
        }

    def drift(self) -> dict[str, dict[str, bool]]:
        """``{signal: {persona: raised}}``: ``log_loss`` (``all`` and per labelled persona) and
        ``persona_mix`` (per persona); raised = ADWIN detected a change in the last
        ``window`` labels."""
        personas = list(self.mix_drift)

        def raised(signal: str, persona: str) -> bool:
            at = self.last_drift.get((signal, persona))
            return at is not None and self.n - at < self.window

        return {
            "log_loss": {p: raised("log_loss", p) for p in ["all", *personas]},
            "persona_mix": {p: raised("persona_mix", p) for p in personas},
        }

    def ece(self) -> float | None:
        if not self.n:
            return None
        gap = sum(
            abs(self.bin_hits[b] - self.bin_conf[b]) for b in range(BINS) if self.bin_count[b]
        )
        return gap / self.n

    def summary(self) -> dict[str, Any]:
        recent_n = len(self.recent)
        return {
            "labels_seen": self.n,
            "log_loss": self.log_loss_sum / self.n if self.n else None,
            "accuracy": self.correct / self.n if self.n else None,
            "ece": self.ece(),
            "recent_log_loss": sum(x for x, _ in self.recent) / recent_n if recent_n else None,
            "recent_accuracy": sum(h for _, h in self.recent) / recent_n if recent_n else None,
            "log_loss_drift": self.drift_detected,
            "log_loss_drifts": self.drifts,
            "persona_mix_drift": [p for p, flag in self.mix_flags.items() if flag],
            "persona_mix_drifts": self.mix_drifts,
        }
