"""The persona mix counts visitors (not updates) by their assigned top persona."""

from __future__ import annotations

from stream_app.worker.persona_mix import count_top_personas, top_persona
from stream_app.worker.visitor_state import VisitorState

PERSONAS = ("tech_evaluator", "budget_owner", "end_user")


def state(top: str | None = None, personas: dict[str, float] | None = None) -> VisitorState:
    return VisitorState(
        "v", assigned={"top": top, "audiences": []} if top else None, personas=personas
    )


def test_each_visitor_counts_once_by_its_assigned_top() -> None:
    states = [state("tech_evaluator"), state("tech_evaluator"), state("budget_owner")]
    assert count_top_personas(states, PERSONAS) == {
        "tech_evaluator": 2,
        "budget_owner": 1,
        "end_user": 0,
    }


def test_assigned_top_wins_over_the_momentary_argmax() -> None:
    """Hysteresis: the published top persona, not a flap of the probabilities."""
    s = state("budget_owner", {"budget_owner": 0.44, "tech_evaluator": 0.46, "end_user": 0.1})
    assert top_persona(s) == "budget_owner"


def test_without_assignment_the_highest_probability_counts() -> None:
    s = state(None, {"budget_owner": 0.2, "tech_evaluator": 0.1, "end_user": 0.7})
    assert top_persona(s) == "end_user"


def test_markers_and_unscored_states_are_not_visitors() -> None:
    merged = VisitorState("a", merged_into="user:u")
    forgotten = VisitorState("b", forgotten_at=1.0)
    unscored = state(None, None)
    counts = count_top_personas([merged, forgotten, unscored, None], PERSONAS)
    assert counts == dict.fromkeys(PERSONAS, 0)


def test_a_persona_no_longer_in_the_catalog_is_still_counted() -> None:
    assert count_top_personas([state("retired")], PERSONAS)["retired"] == 1
