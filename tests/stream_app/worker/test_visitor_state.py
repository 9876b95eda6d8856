"""The typed visitor state and its one encoding (short keys, defaults left out)."""

from __future__ import annotations

import orjson

from stream_app.worker.visitor_state import VisitorState, forgotten_marker, opted_out_marker


def full() -> VisitorState:
    return VisitorState(
        "sim-92918b79-81b7-4e81-a889-4921fa0171ee",
        user_id="u1",
        events=8,
        recent_ids=["9XFAGwRl", "NigFhO1N", "EagboL8i"],
        first_seen="2026-12-06T06:11:09.482Z",
        last_seen="2026-12-06T06:15:59.346Z",
        feedback={"csat": 2},
        identity={"email_sha256": "ab" * 32},
        model={"v": 3, "ll": [0.0, -3.4], "k": {"gGB": 1}, "phase": "consideration"},
        phase="consideration",
        personas={"a": 0.8, "b": 0.2},
        assigned={"top": "a", "audiences": ["a"]},
        aliases=["v2", "v3"],
    )


def test_the_encoding_round_trips_without_the_scores() -> None:
    state = full()
    assert b"sim-92918b79" not in state.encode(), "stored under its id, not with it"
    decoded = VisitorState.decode(state.encode(), state.visitor_id)
    assert decoded.personas is None, "the probabilities are the model's score: not stored"
    state.personas = None
    assert decoded == state


def test_markers_round_trip_and_defaults_are_left_out() -> None:
    for marker in (forgotten_marker("v", 5.0), opted_out_marker("v", 6.0)):
        assert VisitorState.decode(marker.encode(), "v") == marker
    assert orjson.loads(VisitorState("v").encode()) == {}
    assert VisitorState("v").to_doc() == {"v": "v"}
    odd = VisitorState("v", recent_ids=["e0", "x"])
    assert VisitorState.decode(odd.encode(), "v").recent_ids == ["e0", "x"], "kept as a list"
    two = VisitorState("v", assigned={"top": "a", "audiences": ["a", "b"]})
    assert VisitorState.from_doc(two.to_doc()) == two
    assert VisitorState("v", assigned={"top": "a", "audiences": ["a"]}).to_doc()["a"] == "a"


def test_the_dict_encoding_of_before_is_read() -> None:
    legacy = {
        "visitor_id": "v1",
        "user_id": None,
        "events": 2,
        "recent_ids": ["9XFAGwRl"],
        "first_seen": "2026-12-06T06:11:09.482Z",
        "last_seen": "2026-12-06T06:15:59.346Z",
        "feedback": {"nps": None, "csat": 2, "ces": None},
        "identity": {},
        "model": {"v": 3},
        "phase": "awareness",
        "personas": {"a": 1.0},
        "assigned": {"top": "a", "audiences": ["a"]},
    }
    state = VisitorState.decode(orjson.dumps(legacy), "v1")
    assert (
        state.events == 2 and state.feedback == {"csat": 2} and state.assigned == legacy["assigned"]
    )
    assert state.feedback_record() == {"nps": None, "csat": 2, "ces": None}
    marker = VisitorState.decode(b'{"visitor_id":"v","forgotten_at":5,"opted_out":true}', "v")
    assert marker.is_forgotten and marker.opted_out and not marker.is_visitor


def test_copy_for_update_shares_nothing_it_updates() -> None:
    state = full()
    copy = state.copy_for_update()
    copy.recent_ids.append("x")
    copy.feedback["nps"] = 9
    copy.identity["phone_sha256"] = "cd"
    copy.aliases.append("v4")
    assert state == full()
