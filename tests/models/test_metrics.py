from __future__ import annotations

import math

import pytest

from models.metrics import ProgressiveMetrics


def test_log_loss_accuracy_and_ece() -> None:
    m = ProgressiveMetrics(["a", "b"])
    m.update({"a": 0.8, "b": 0.2}, "a")
    m.update({"a": 0.8, "b": 0.2}, "b")
    s = m.summary()
    assert s["labels_seen"] == 2
    assert s["accuracy"] == 0.5
    assert s["log_loss"] == pytest.approx((-math.log(0.8) - math.log(0.2)) / 2)
    assert s["ece"] == pytest.approx(0.3)  # one bin: confidence 0.8, accuracy 0.5


def test_zero_probability_is_a_finite_loss() -> None:
    m = ProgressiveMetrics(["a", "b"])
    info = m.update({"a": 1.0, "b": 0.0}, "b")
    assert math.isfinite(info["log_loss"]) and info["log_loss"] > 20


def test_empty_summary() -> None:
    s = ProgressiveMetrics(["a"]).summary()
    assert s["labels_seen"] == 0 and s["log_loss"] is None and s["ece"] is None


def test_persona_mix_drift_is_flagged() -> None:
    m = ProgressiveMetrics(["a", "b"])
    for _ in range(1000):
        m.update({"a": 0.5, "b": 0.5}, "a")
    assert m.summary()["persona_mix_drifts"] == 0
    for _ in range(300):
        m.update({"a": 0.5, "b": 0.5}, "b")
    assert m.summary()["persona_mix_drifts"] > 0


def test_log_loss_drift_is_flagged() -> None:
    m = ProgressiveMetrics(["a", "b"])
    for i in range(1000):
        m.update({"a": 0.9, "b": 0.1}, "a" if i % 10 else "b")
    before = m.drifts
    for _ in range(300):
        m.update({"a": 0.9, "b": 0.1}, "b")
    assert m.drifts > before
