from __future__ import annotations

import pytest

from stream_app.worker.feedback import kpi_increments, nps_bucket, phases_in, summarise


@pytest.mark.parametrize(
    ("score", "bucket"),
    [
        (0, "nps_detractors"),
        (6, "nps_detractors"),
        (7, "nps_passives"),
        (8, "nps_passives"),
        (9, "nps_promoters"),
        (10, "nps_promoters"),
    ],
)
def test_nps_buckets(score: int, bucket: str) -> None:
    assert nps_bucket(score) == bucket


def test_increments_overall_and_per_phase() -> None:
    inc = kpi_increments("csat", 4, "buyer", "decision")
    assert set(inc) == {
        ("buyer", "csat_sum", 4.0),
        ("buyer", "csat_count", 1.0),
        ("buyer", "decision:csat_sum", 4.0),
        ("buyer", "decision:csat_count", 1.0),
    }
    assert kpi_increments("nps", 9, None, "decision") == ()
    with pytest.raises(ValueError, match="unknown feedback kind"):
        kpi_increments("stars", 3, "buyer", None)


def test_summary_computes_nps_csat_ces() -> None:
    counters: dict[str, float] = {}
    for kind, score in [
        ("nps", 10),
        ("nps", 9),
        ("nps", 3),
        ("nps", 7),
        ("csat", 5),
        ("csat", 4),
        ("ces", 2),
    ]:
        for _, field, amount in kpi_increments(kind, score, "p", "retention"):
            counters[field] = counters.get(field, 0.0) + amount
    s = summarise(counters)
    assert s["nps"] == 25.0  # 2 promoters, 1 detractor of 4: 50% - 25%
    assert s["nps_responses"] == 4
    assert s["csat"] == 4.5 and s["ces"] == 2.0
    assert summarise(counters, "retention") == s
    assert summarise(counters, "awareness")["nps"] is None
    assert phases_in(counters) == ["retention"]
