from __future__ import annotations

from collections import Counter

from models.catalog import Catalog
from models.simulator import Simulator


def test_seeded_and_deterministic(catalog: Catalog) -> None:
    a = [e["event_id"] for e in Simulator(catalog, seed=1).events(20)]
    b = [e["event_id"] for e in Simulator(catalog, seed=1).events(20)]
    c = [e["event_id"] for e in Simulator(catalog, seed=2).events(20)]
    assert a == b and a != c


def test_truth_and_labels(catalog: Catalog) -> None:
    sim = Simulator(catalog, seed=3, labelled_fraction=0.5)
    visitors = list(sim.visitors(400))
    assert {v.visitor_id: v.persona for v in visitors} == sim.truth
    assert set(sim.truth.values()) == set(catalog.persona_ids)
    labelled = [v for v in visitors if v.labelled]
    assert 120 < len(labelled) < 280
    for v in labelled:
        label = v.events[-1]
        assert label["type"] == "label" and label["persona"] == v.persona


def test_stream_keeps_each_visitors_order(catalog: Catalog) -> None:
    sim = Simulator(catalog, seed=4, labelled_fraction=0.0)
    events = list(sim.stream(100))
    by_visitor: dict[str, list[str]] = {}
    for e in events:
        by_visitor.setdefault(e["visitor_id"], []).append(e["ts"])
    assert len(by_visitor) == 100
    assert all(ts == sorted(ts) for ts in by_visitor.values())
    types = Counter(e["type"] for e in events)
    assert types["page_view"] > types["touchpoint"] > 0
