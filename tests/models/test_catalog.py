from __future__ import annotations

import pytest

from models.catalog import Catalog, CatalogError


def problems_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as info:
        Catalog.from_yaml(text, source="c.yaml")
    return info.value.problems


def test_sample_catalog_is_valid(catalog: Catalog) -> None:
    assert 4 <= len(catalog.persona_ids) <= 6
    assert len(set(catalog.persona_ids)) == len(catalog.persona_ids)
    assert catalog.page_category("/pricing/enterprise") == "pricing"
    assert catalog.page_category("/nothing-matches-here") == "other"


def test_empty_catalog_is_rejected() -> None:
    assert any("no personas" in p for p in problems_of("personas: []\n"))


def test_catalog_that_is_not_a_mapping() -> None:
    assert problems_of("- just\n- a list\n") == [
        "c.yaml: the catalog must be a mapping with a 'personas' list"
    ]


def test_invalid_yaml_is_reported() -> None:
    (problem,) = problems_of("personas: [\n")
    assert problem.startswith("c.yaml: not valid YAML")


def test_every_problem_is_reported_with_its_line() -> None:
    text = (
        "personas:\n"
        "  - {id: a, name: A}\n"
        "  - {id: a, name: Again}\n"
        "linking_rules:\n"
        "  - {persona: ghost, when: {page: [docs]}, weight: 1}\n"
        "  - {persona: a, when: {colour: [red]}, weight: 1}\n"
        "  - {persona: a, when: {page: [nowhere]}, weight: 99}\n"
        "page_categories:\n"
        "  - {pattern: '/docs*', category: docs}\n"
    )
    problems = problems_of(text)
    assert "c.yaml:3: personas[1].id: duplicate persona id 'a'" in problems
    assert "c.yaml:5: linking_rules[0].persona: unknown persona 'ghost'" in problems
    assert any(p.startswith("c.yaml:6: linking_rules[1].when") and "colour" in p for p in problems)
    assert any(p.startswith("c.yaml:7: linking_rules[2].weight") for p in problems)
    assert any("'nowhere' never occurs" in p for p in problems)
    assert len(problems) == 5


def test_unknown_phase_and_bad_touch_value() -> None:
    text = (
        "personas:\n"
        "  - {id: a, name: A, phases: [dreaming]}\n"
        "journey:\n"
        "  - {phase: decision, when: {touch: ['pigeon:post']}}\n"
    )
    problems = problems_of(text)
    assert any("personas[0].phases" in p and "dreaming" in p for p in problems)
    assert any("journey[0].when.touch[0]" in p and "pigeon:post" in p for p in problems)


def test_unknown_top_level_field_is_rejected() -> None:
    problems = problems_of("personas:\n  - {id: a, name: A}\nextras: 1\n")
    assert any("extras" in p for p in problems)
