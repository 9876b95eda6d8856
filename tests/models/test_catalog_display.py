"""Optional ``display`` content of personas: validated, with fallbacks."""

from __future__ import annotations

import pytest

from models.catalog import Catalog, CatalogError


def load(persona_yaml: str) -> Catalog:
    return Catalog.from_yaml("personas:\n" + persona_yaml, source="c.yaml")


def test_sample_catalog_has_display_for_every_persona(catalog: Catalog) -> None:
    for p in catalog.personas:
        assert p.display is not None and p.display.headline and p.display.cta, p.id


def test_missing_display_falls_back_to_name_and_description() -> None:
    c = load("  - {id: a, name: Alpha, description: Likes things.}\n  - {id: b, name: Beta}\n")
    a, b = c.personas
    assert a.display_content() == {
        "headline": "Alpha",
        "text": "Likes things.",
        "cta": "Learn more",
        "cta_url": "/",
    }
    assert b.display_content()["text"] == "Beta"


def test_partial_display_keeps_what_is_given() -> None:
    c = load("  - id: a\n    name: Alpha\n    display: {cta: Try it, cta_url: /signup}\n")
    content = c.personas[0].display_content()
    assert content["cta"] == "Try it" and content["cta_url"] == "/signup"
    assert content["headline"] == "Alpha"


def test_bad_display_is_reported_with_its_line() -> None:
    text = (
        "personas:\n"
        "  - id: a\n"
        "    name: Alpha\n"
        "    display:\n"
        "      cta_url: javascript:alert(1)\n"
        "      colour: red\n"
        "      headline: ''\n"
    )
    with pytest.raises(CatalogError) as info:
        Catalog.from_yaml(text, source="c.yaml")
    problems = "\n".join(info.value.problems)
    assert "c.yaml:5: personas[0].display.cta_url" in problems
    assert "c.yaml:6: personas[0].display.colour" in problems
    assert "c.yaml:7: personas[0].display.headline" in problems
