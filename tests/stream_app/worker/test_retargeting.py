from __future__ import annotations

from stream_app.worker.retargeting import changed, next_assignment


def test_first_assignment_takes_top_and_members() -> None:
    a = next_assignment(None, {"x": 0.6, "y": 0.3, "z": 0.1}, 0.5, 0.1)
    assert a == {"top": "x", "audiences": ["x"]}
    assert changed(None, a)


def test_hysteresis_keeps_top_and_membership_near_the_boundary() -> None:
    prev = {"top": "x", "audiences": ["x"]}
    # y now slightly ahead, x slightly below threshold: nothing changes.
    a = next_assignment(prev, {"x": 0.45, "y": 0.5, "z": 0.05}, 0.5, 0.1)
    assert a["top"] == "x"
    assert a["audiences"] == ["x", "y"]
    # Clear win and clear drop: both change.
    b = next_assignment(a, {"x": 0.2, "y": 0.75, "z": 0.05}, 0.5, 0.1)
    assert b == {"top": "y", "audiences": ["y"]}
    assert changed(a, b) and not changed(b, dict(b))
