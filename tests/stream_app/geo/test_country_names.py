"""Country names and codes -> ISO 3166-1 alpha-2."""

from __future__ import annotations

import pytest

from stream_app.geo.country_names import country_code_of


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("United States", "US"),
        ("United States of America", "US"),
        ("USA", "US"),
        ("  germany ", "DE"),
        ("The Netherlands", "NL"),
        ("Netherlands", "NL"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("Russian Federation", "RU"),
        ("Russia", "RU"),
        ("Iran", "IR"),
        ("Côte d'Ivoire", "CI"),
        ("Türkiye", "TR"),
        ("BRA", "BR"),
        ("jp", "JP"),
    ],
)
def test_names_and_codes(value: str, code: str) -> None:
    assert country_code_of(value) == code


@pytest.mark.parametrize("value", ["Atlantis", "", "XX", "Europe", None, 7, "x" * 500])
def test_unknown_values_give_none(value: object) -> None:
    assert country_code_of(value) is None
