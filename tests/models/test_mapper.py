from __future__ import annotations

import json
import math
import pickle
import zlib
from typing import Any

import pytest

from models import snapshot
from models.catalog import Catalog
from models.errors import UnknownPersonaError
from models.mapper import PersonaMapper
from tests.models.conftest import page

SITE = "https://acme.example"


def run(
    mapper: PersonaMapper, events: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    state = mapper.new_state()
    out: dict[str, Any] = {}
    for event in events:
        state, out = mapper.observe(json.loads(json.dumps(state)), event)
    return state, out


def assert_distribution(personas: dict[str, float], catalog: Catalog) -> None:
    assert list(personas) == catalog.persona_ids
    assert all(math.isfinite(p) and p >= 0 for p in personas.values())
    assert math.isclose(sum(personas.values()), 1.0, abs_tol=1e-9)


def test_every_event_type_gives_a_full_distribution(
    mapper: PersonaMapper, catalog: Catalog
) -> None:
    base = {"visitor_id": "v1", "ts": "2026-11-20T10:00:00Z"}
    events = [
        page(SITE + "/pricing", context={"user_agent": "curl/8", "country": "US"}),
        {**base, "event_id": "2", "type": "touchpoint", "channel": "form", "action": "submit"},
        {**base, "event_id": "3", "type": "feedback", "kind": "nps", "score": 9},
        {**base, "event_id": "4", "type": "identify", "user_id": "u1", "traits": {}},
        {**base, "event_id": "5", "type": "label", "persona": "pragmatic_buyer", "source": "crm"},
    ]
    state = mapper.new_state()
    for event in events:
        state, out = mapper.observe(state, event)
        assert_distribution(out["personas"], catalog)
        assert out["top"]["probability"] == max(out["personas"].values())
        assert out["phase"] in {"awareness", "consideration", "decision", "purchase", "retention"}
        assert out["features"]["type"] == event["type"]
    assert json.loads(json.dumps(state)) == state
    assert out["top"] == {"persona": "pragmatic_buyer", "probability": 1.0}


def test_first_event_follows_the_rules(mapper: PersonaMapper) -> None:
    _, out = run(mapper, [page(SITE + "/docs/api")])
    assert out["top"]["persona"] == "tech_evaluator"
    _, out = run(mapper, [page(SITE + "/help/sso")])
    assert out["top"]["persona"] == "loyal_customer"


def test_evidence_accumulates_and_decays(catalog: Catalog) -> None:
    mapper = PersonaMapper(catalog, half_life_s=3600.0)
    one, _ = run(mapper, [page(SITE + "/pricing")])
    three, _ = run(
        mapper, [page(SITE + "/pricing", ts=f"2026-11-20T10:0{i}:00Z") for i in range(3)]
    )
    assert mapper.score(three)["pragmatic_buyer"] > mapper.score(one)["pragmatic_buyer"]
    # 10 half-lives later a docs page outweighs the old pricing evidence
    _state, out = mapper.observe(three, page(SITE + "/docs", ts="2026-11-20T20:05:00Z"))
    assert out["top"]["persona"] == "tech_evaluator"


def test_out_of_order_event_counts_less(mapper: PersonaMapper) -> None:
    state, _ = run(mapper, [page(SITE + "/blog", ts="2026-11-20T10:00:00Z")])
    late, _ = mapper.observe(state, page(SITE + "/docs", ts="2026-10-01T10:00:00Z"))
    fresh, _ = mapper.observe(state, page(SITE + "/docs", ts="2026-11-20T10:00:01Z"))
    assert late["ts"] == state["ts"]
    assert mapper.score(late)["tech_evaluator"] < mapper.score(fresh)["tech_evaluator"]


def test_phase_moves_forward_only(mapper: PersonaMapper) -> None:
    base = {"visitor_id": "v", "ts": "2026-11-20T10:00:00Z"}
    buy = {**base, "event_id": "b", "type": "touchpoint", "channel": "store", "action": "purchase"}
    _, out = run(mapper, [page(SITE + "/pricing"), page(SITE + "/blog")])
    assert out["phase"] == "decision"
    _, out = run(mapper, [page(SITE + "/help"), buy, page(SITE + "/help")])
    assert out["phase"] == "retention"
    _state, out = run(mapper, [page(SITE + "/help")])
    assert out["phase"] == "awareness"  # retention needs a purchase first


def test_unknown_persona_label(mapper: PersonaMapper) -> None:
    with pytest.raises(UnknownPersonaError) as info:
        mapper.learn(mapper.new_state(), "wizard")
    assert isinstance(info.value, ValueError)
    assert "wizard" in str(info.value)
    state, out = mapper.observe(
        mapper.new_state(),
        {"type": "label", "persona": "wizard", "visitor_id": "v", "ts": "2026-11-20T10:00:00Z"},
    )
    assert state.get("label") is None
    assert math.isclose(sum(out["personas"].values()), 1.0)


@pytest.mark.parametrize("weight", [0.0, -1.0, 1.5, float("nan")])
def test_bad_label_weight(mapper: PersonaMapper, weight: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        mapper.learn(mapper.new_state(), "casual_reader", weight)


def test_learn_returns_progressive_validation(mapper: PersonaMapper) -> None:
    state, _ = run(mapper, [page(SITE + "/blog")])
    info = mapper.learn(state, "casual_reader")
    assert info["predicted"] == "casual_reader"
    assert info["log_loss"] > 0
    metrics = mapper.metrics()
    assert metrics["labels_seen"] == 1
    assert metrics["accuracy"] == 1.0
    assert metrics["persona_mix_drift"] == []


def test_snapshot_round_trip_and_hot_swap(mapper: PersonaMapper, catalog: Catalog) -> None:
    state, _ = run(mapper, [page(SITE + "/docs"), page(SITE + "/pricing")])
    for _ in range(20):
        mapper.learn(state, "pragmatic_buyer")
    mapper.version = 7
    data = mapper.snapshot()
    assert isinstance(data, bytes) and 100 < len(data) < 200_000
    clone = PersonaMapper.from_snapshot(data, catalog)
    assert clone.version == 7
    assert clone.n_labels == 20
    assert clone.score(state) == mapper.score(state)
    assert clone.metrics()["labels_seen"] == 20
    assert (
        clone.observe(state, page(SITE + "/blog"))[1]
        == mapper.observe(state, page(SITE + "/blog"))[1]
    )


def _tampered(data: bytes, change: Any) -> bytes:
    doc = snapshot.decode(data)
    change(doc)
    return snapshot.MAGIC + zlib.compress(json.dumps(doc).replace("Infinity", "1e999").encode())


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(format=99),
        lambda d: d.update(version=-1),
        lambda d: d.update(half_life_s=0),
        lambda d: d["model"]["counts"].update(zghost=[1.0] * 5),
        lambda d: d["model"]["counts"].update({"p^1": ["1", 0, 0, 0, 0]}),
        lambda d: d["model"]["counts"].update({"gUS": [1.0, float("inf"), 0, 0, 0]}),
        lambda d: d["model"]["label_weight"].pop(),
        lambda d: d["model"].update(prior_strength=-5),
        lambda d: d["model"].pop("temperature"),
        lambda d: d["model"].update(pages=["docs"]),
        lambda d: d["model"]["a_score"].update(p=[0.0]),
        lambda d: d["validation"].update(bin_count=[1]),
        lambda d: d.pop("model"),
    ],
)
def test_tampered_snapshot_is_refused(mapper: PersonaMapper, catalog: Catalog, change: Any) -> None:
    state, _ = run(mapper, [page(SITE + "/blog")])
    mapper.learn(state, "casual_reader")
    with pytest.raises(ValueError):
        PersonaMapper.from_snapshot(_tampered(mapper.snapshot(), change), catalog)


def test_snapshot_errors(mapper: PersonaMapper, catalog: Catalog) -> None:
    data = mapper.snapshot()
    for bad in [b"not a snapshot", pickle.dumps({"format": 3}), data[:20], snapshot.MAGIC + b"zz"]:
        with pytest.raises(ValueError, match="snapshot"):
            PersonaMapper.from_snapshot(bad, catalog)
    bomb = snapshot.MAGIC + zlib.compress(b" " * (snapshot.MAX_JSON_BYTES + 10))
    with pytest.raises(ValueError, match="too large"):
        PersonaMapper.from_snapshot(bomb, catalog)
    other = Catalog.from_yaml("personas:\n  - {id: x, name: X}\n  - {id: y, name: Y}\n")
    with pytest.raises(ValueError, match="different persona catalog"):
        PersonaMapper.from_snapshot(mapper.snapshot(), other)


def test_merge_states(mapper: PersonaMapper, catalog: Catalog) -> None:
    a, _ = run(mapper, [page(SITE + "/pricing"), page(SITE + "/compare")])
    b, _ = run(mapper, [page(SITE + "/pricing", ts="2026-11-21T10:00:00Z")])
    merged = mapper.merge_states(a, b)
    assert json.loads(json.dumps(merged)) == merged
    assert merged["n"] == 3
    assert merged["phase"] == "decision"
    assert merged["ts"] == b["ts"]
    assert mapper.score(merged)["pragmatic_buyer"] > mapper.score(b)["pragmatic_buyer"]
    assert_distribution(
        mapper.score(mapper.merge_states(mapper.new_state(), mapper.new_state())), catalog
    )


def test_rejects_bad_half_life(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="half_life_s"):
        PersonaMapper(catalog, half_life_s=0)


def test_score_of_corrupt_evidence_is_still_a_distribution(
    mapper: PersonaMapper, catalog: Catalog
) -> None:
    state = mapper.new_state()
    state["evidence"] = {"tech_evaluator": float("nan"), "casual_reader": "x", "ghost": 5.0}
    assert_distribution(mapper.score(state), catalog)


def test_restored_mapper_keeps_learning_identically(
    mapper: PersonaMapper, catalog: Catalog
) -> None:
    states = [run(mapper, [page(SITE + p)])[0] for p in ("/docs", "/pricing", "/blog", "/help")]
    for state, persona in zip(states, catalog.persona_ids, strict=False):
        mapper.learn(state, persona)
    clone = PersonaMapper.from_snapshot(mapper.snapshot(), catalog)
    for m in (mapper, clone):
        m.learn(states[0], "tech_evaluator")
        m.learn(states[2], "executive_sponsor")
    for state in states:
        assert clone.score(state) == pytest.approx(mapper.score(state), abs=1e-12)


def test_observe_many_equals_repeated_observe(mapper: PersonaMapper) -> None:
    events = [
        page(SITE + p, ts=f"2026-11-20T10:0{i}:00Z")
        for i, p in enumerate(["/", "/docs", "/pricing"])
    ]
    state, _ = run(mapper, events)
    assert mapper.observe_many(mapper.new_state(), events) == state


@pytest.mark.parametrize("ts", [None, "", "not a time", 12345])
def test_event_without_usable_ts_keeps_the_clock(mapper: PersonaMapper, ts: Any) -> None:
    event = page(SITE + "/pricing")
    event["ts"] = ts
    state, _ = mapper.observe(mapper.new_state(), event)
    assert state["ts"] is None
    state, out = mapper.observe(state, page(SITE + "/compare"))
    assert state["ts"] is not None
    _, alone = mapper.observe(mapper.new_state(), page(SITE + "/compare"))
    # the first page's evidence was not wiped by decaying from "time zero"
    assert out["personas"]["pragmatic_buyer"] > alone["personas"]["pragmatic_buyer"] + 0.1
    assert json.loads(json.dumps(state)) == state


def test_old_snapshot_format_is_refused_cleanly(mapper: PersonaMapper, catalog: Catalog) -> None:
    doc = snapshot.decode(mapper.snapshot())
    doc["format"] = 3  # the river SoftmaxRegression snapshots before the generative model
    old = snapshot.encode(doc)
    with pytest.raises(snapshot.SnapshotError, match="unsupported snapshot format 3"):
        PersonaMapper.from_snapshot(old, catalog)


def test_old_state_format_starts_afresh(mapper: PersonaMapper, catalog: Catalog) -> None:
    old = {"v": 2, "evidence": {"casual_reader": 9.0}, "phase": "decision", "recent": [], "n": 4}
    assert_distribution(mapper.score(old), catalog)
    state, out = mapper.observe(old, page(SITE + "/docs"))
    assert state["v"] == 3 and state["n"] == 1
    assert out["phase"] == "decision"  # the journey phase is kept
    assert out["top"]["persona"] == "tech_evaluator"
    assert mapper.merge_states(old, state)["n"] == 1
    mapper.learn(old, "casual_reader")  # nothing to learn from, but no crash
    assert mapper.n_labels == 1


def test_state_is_compact(mapper: PersonaMapper) -> None:
    import orjson

    from models.worlds import World

    world = World(mapper.catalog, seed=3, kind="markov", labelled_fraction=0.0)
    events = [e for v in world.visitors(40) for e in v.events]
    state = mapper.new_state()
    for i, e in enumerate(events[:50]):
        state, _ = mapper.observe(state, {**e, "visitor_id": "one"})
        if i == 9:
            assert len(orjson.dumps(state)) < 450
    assert len(orjson.dumps(state)) < 800
    assert set(state) <= {"v", "ll", "ts", "q", "k", "n", "phase", "label"}
