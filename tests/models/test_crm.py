from __future__ import annotations

import math

import pytest

from models.crm import RowError, map_row, row_events
from models.mapper import PersonaMapper


def test_row_maps_to_a_full_distribution(mapper: PersonaMapper) -> None:
    out = map_row(
        mapper,
        {"id": "c1", "pages": "/docs;/api/v2", "touchpoints": "webinar:attend", "country": "DE"},
    )
    assert out["id"] == "c1"
    assert out["top_persona"] == "tech_evaluator"
    assert math.isclose(sum(out["personas"].values()), 1.0)
    assert out["phase"] == "consideration"


def test_row_with_only_an_id_gets_the_prior(mapper: PersonaMapper) -> None:
    out = map_row(mapper, {"customer_id": "c2"})
    assert out["probability"] == pytest.approx(1 / len(mapper.personas))


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ({"id": ""}, "id"),
        ({"id": "x", "last_seen": "yesterday"}, "last_seen"),
        ({"id": "x", "last_seen": "2026-01-01T10:00:00"}, "last_seen"),
        ({"id": "x", "pages": "docs"}, "pages"),
        ({"id": "x", "touchpoints": "email"}, "touchpoints"),
        ({"id": "x", "touchpoints": "pigeon:post"}, "touchpoints"),
        ({"id": "x", "pages": ";".join(["/a"] * 201)}, "pages"),
    ],
)
def test_bad_rows(row: dict[str, str], column: str) -> None:
    with pytest.raises(RowError, match=f"^{column}:"):
        row_events(row)
