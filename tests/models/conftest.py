"""Fixtures for the modelling core: the sample catalog and a mapper on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.catalog import Catalog
from models.mapper import PersonaMapper

SAMPLE = Path(__file__).resolve().parents[2] / "models" / "catalogs" / "b2b_saas.yaml"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load(SAMPLE)


@pytest.fixture
def mapper(catalog: Catalog) -> PersonaMapper:
    return PersonaMapper(catalog, half_life_s=604800.0)


def page(url: str, ts: str = "2026-11-20T10:00:00Z", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"e-{url}-{ts}",
        "type": "page_view",
        "visitor_id": "v1",
        "ts": ts,
        "url": url,
        **extra,
    }
