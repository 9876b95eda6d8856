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


def test_drift_flags_by_signal_and_persona() -> None:
    m = ProgressiveMetrics(["a", "b"], window=300)
    assert m.drift() == {
        "log_loss": {"all": False, "a": False, "b": False},
        "persona_mix": {"a": False, "b": False},
    }
    for _ in range(400):  # good predictions of "a" only, then "b" labels predicted badly
        m.update({"a": 0.95, "b": 0.05}, "a")
    for _ in range(200):
        m.update({"a": 0.95, "b": 0.05}, "b")
    flags = m.drift()
    assert flags["log_loss"]["all"] and flags["persona_mix"]["b"]
    for _ in range(1500):  # a long steady stream: the flags clear after the window
        m.update({"a": 0.5, "b": 0.5}, "b")
    assert not any(f for by_persona in m.drift().values() for f in by_persona.values())
