"""Simulated worlds with an oracle: the oracle is the exact posterior, and the model nears it."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

import pytest

from models.catalog import Catalog
from models.evaluation import evaluate, replay, train
from models.mapper import PersonaMapper
from models.worlds import (
    CHANNELS,
    COUNTRIES,
    DEVICES,
    ENTRY,
    EVENT_TYPES,
    FEEDBACK,
    SITE,
    TOUCHES,
    UAS,
    World,
    WorldVisitor,
    random_catalog,
)


def _channel(event: dict[str, Any]) -> str:
    query = urlsplit(event["url"]).query
    for name, (q, referrer) in ENTRY.items():
        same_query = query.startswith(q.split("{")[0].lstrip("?")) if q else query == ""
        if same_query and event["referrer"] == referrer:
            return name
    raise AssertionError(f"no channel for {event['url']} {event['referrer']}")


def recomputed_posterior(world: World, v: WorldVisitor) -> list[float]:
    """The posterior from the events alone and the world's parameters (independent of the
    generator's own bookkeeping)."""
    events = [e for e in v.events if e["type"] != "label"]
    ctx = events[0]["context"]
    ua = next(i for i, (_, s) in enumerate(UAS) if s == ctx["user_agent"])
    device = DEVICES.index(UAS[ua][0])
    within = [i for i, (d, _) in enumerate(UAS) if d == UAS[ua][0]]
    ll = []
    for p in world.params:
        total = math.log(p.device[device]) + math.log(p.ua[ua])
        total += math.log(p.country[COUNTRIES.index(ctx["country"])])
        prev = -1
        for e in events:
            opens = e["type"] == "page_view" and e["referrer"] != SITE + "/"
            if opens:
                total += math.log(p.hour[int(e["ts"][11:13])])
                total += math.log(p.channel[CHANNELS.index(_channel(e))])
                prev = -1
            else:
                total += math.log(p.types[EVENT_TYPES.index(e["type"])])
            if e["type"] == "page_view":
                cat = world.categories.index(world.catalog.page_category(urlsplit(e["url"]).path))
                total += math.log(p.landing[cat] if prev < 0 else p.transition[prev][cat])
                prev = cat
                z = (math.log(e["dwell_ms"]) - p.dwell_mu) / p.dwell_sigma
                total += -0.5 * z * z - math.log(p.dwell_sigma)
            elif e["type"] == "touchpoint":
                total += math.log(p.touch[TOUCHES.index(f"{e['channel']}:{e['action']}")])
            else:
                total += math.log(p.feedback[e["kind"]][e["score"] - FEEDBACK[e["kind"]][0]])
        ll.append(total)
    assert sum(p.ua[i] for i in within) == pytest.approx(1.0)
    logits = [m + x for m, x in zip(world.log_mix, ll, strict=True)]
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    return [x / sum(exps) for x in exps]


@pytest.mark.parametrize("kind", ["sessions", "markov"])
def test_oracle_is_the_exact_posterior_of_the_events(catalog: Catalog, kind: str) -> None:
    world = World(catalog, seed=21, kind=kind)
    for v in world.visitors(60):
        expected = recomputed_posterior(world, v)
        assert [v.oracle[p] for p in catalog.persona_ids] == pytest.approx(expected, abs=1e-9)
        assert len(v.oracle_top) == sum(e["type"] != "label" for e in v.events)
        assert v.oracle_top[-1] == max(v.oracle, key=v.oracle.__getitem__)


def test_worlds_are_seeded_and_look_like_a_site(catalog: Catalog) -> None:
    a = [e["event_id"] for v in World(catalog, seed=1).visitors(20) for e in v.events]
    b = [e["event_id"] for v in World(catalog, seed=1).visitors(20) for e in v.events]
    c = [e["event_id"] for v in World(catalog, seed=2).visitors(20) for e in v.events]
    assert a == b and a != c
    visitors = list(World(catalog, seed=3, labelled_fraction=0.0).visitors(300))
    landings = [
        e for v in visitors for e in v.events if e.get("referrer", SITE + "/") != SITE + "/"
    ]
    sessions = [len(landings_of(v)) for v in visitors]
    assert max(sessions) > 2 and sum(sessions) / len(sessions) > 1.8
    assert all(isinstance(e["dwell_ms"], int) for e in landings)
    kinds = {e["type"] for v in visitors for e in v.events}
    assert kinds == {"page_view", "touchpoint", "feedback"}
    with pytest.raises(ValueError):
        World(catalog, kind="bayes-breaker")


def landings_of(v: WorldVisitor) -> list[dict[str, Any]]:
    return [e for e in v.events if e["type"] == "page_view" and e["referrer"] != SITE + "/"]


def test_oracle_is_calibrated_and_far_better_than_uniform(catalog: Catalog) -> None:
    world = World(catalog, seed=4, kind="markov")
    r = evaluate(((v.oracle, v.persona) for v in world.visitors(1500)), catalog.persona_ids)
    assert r["log_loss"] < 0.4 and r["accuracy"] > 0.85
    assert r["ece"] < 0.03


@pytest.mark.parametrize("kind", ["sessions", "markov"])
def test_two_thousand_labels_near_the_oracle(catalog: Catalog, kind: str) -> None:
    world = World(catalog, seed=31, kind=kind)
    held_out = list(world.visitors(800))
    oracle = evaluate(((v.oracle, v.persona) for v in held_out), catalog.persona_ids)
    mapper = PersonaMapper(catalog)
    train(mapper, world.visitors(2000))
    r = evaluate(
        ((mapper.score(replay(mapper, v.events)), v.persona) for v in held_out),
        catalog.persona_ids,
    )
    # bench_models.py measures 1.04 (A) and 1.08 (B) on its seed; the bound leaves room for this one
    assert r["log_loss"] <= 1.15 * oracle["log_loss"], (r["log_loss"], oracle["log_loss"])
    assert r["ece"] <= 0.035
    if kind == "sessions":
        assert mapper.model.backoff >= 1000  # independent pages: the chain backs off fully
    else:
        assert mapper.model.backoff <= 300  # page transitions matter: they are learned


@pytest.mark.parametrize("seed", [3, 7, 12])
def test_rules_alone_beat_uniform_from_the_first_event(seed: int) -> None:
    catalog = random_catalog(seed)
    world = World(catalog, seed=seed, kind="markov", labelled_fraction=0.0)
    mapper = PersonaMapper(catalog)
    first, last = [], []
    for v in world.visitors(400):
        state, out = mapper.observe(mapper.new_state(), v.events[0])
        first.append((out["personas"], v.persona))
        last.append((mapper.score(mapper.observe_many(state, v.events[1:])), v.persona))
    uniform = math.log(len(catalog.persona_ids))
    for preds in (first, last):
        assert evaluate(preds, catalog.persona_ids)["log_loss"] < uniform


def test_label_weight_counts(catalog: Catalog) -> None:
    world = World(catalog, seed=8)
    visitors = [v for v in world.visitors(50)]
    full, half = PersonaMapper(catalog), PersonaMapper(catalog)
    for v in visitors:
        state = replay(full, v.events)
        full.learn(state, v.persona, 1.0)
        half.learn(state, v.persona, 0.5)
    assert sum(half.model.label_weight) == pytest.approx(sum(full.model.label_weight) / 2)
    token = next(iter(replay(full, visitors[0].events)["k"]))
    key = "P" + token[-1] if token[0] == "p" else token
    assert sum(half.model.counts[key]) == pytest.approx(sum(full.model.counts[key]) / 2)


def test_rules_alone_beat_uniform_even_when_most_behaviour_is_unknown_to_them(
    catalog: Catalog,
) -> None:
    world = World(catalog, seed=5, hidden_strength=0.8, events_per_session=8, labelled_fraction=0)
    mapper = PersonaMapper(catalog)
    preds = [(mapper.score(replay(mapper, v.events)), v.persona) for v in world.visitors(400)]
    assert evaluate(preds, catalog.persona_ids)["log_loss"] < math.log(len(catalog.persona_ids))


def test_repeats_count_less_while_the_counts_are_few(catalog: Catalog) -> None:
    from tests.models.conftest import page

    mapper = PersonaMapper(catalog)
    blog = [page("https://a.example/blog", ts=f"2026-11-20T10:{i:02d}:00Z") for i in range(30)]
    state = mapper.observe_many(mapper.new_state(), blog)
    one = mapper.model.log_proba("p^" + state["q"])  # the plug-in log-probability of one page
    naive = [a - max(one) for a in (30 * x for x in one)]
    assert max(state["ll"]) == 0.0
    spread, naive_spread = -min(state["ll"]), -min(naive)
    assert 0 < spread < naive_spread / 3  # the posterior still leans, but does not run away
    assert max(mapper.score(state), key=mapper.score(state).get) == "casual_reader"
    trained = PersonaMapper(catalog)
    train(trained, World(catalog, seed=2).visitors(2000))
    token = next(t for t in replay(trained, blog[:2])["k"] if t.startswith("y"))
    assert trained.model.visitor_evidence(token, {token: 3}) is None  # enough counts: plug-in


def test_context_totals_count_the_tokens_sharing_each_context() -> None:
    from models.likelihood import TokenModel

    seen = {"p^3": 2, "p33": 4, "p34": 1, "p_70_3": 5, "p_70_4": 1, "d5": 3, "d6": 1, "y0": 2}
    totals = TokenModel.context_totals(seen)
    for token in seen:
        context = TokenModel.parts(token)[1]
        assert totals[context] == sum(n for t, n in seen.items() if t.startswith(context))
    assert totals == {"p^": 2, "p3": 5, "p_70_": 6, "d": 4, "y": 2}


def _bimodal(world: World, spread: float = 1.2) -> World:
    """The world with bimodal dwell times (not log-normal); its oracle no longer applies."""
    gauss, uniform = world.rng.gauss, world.rng.random

    def draw(mu: float, sigma: float) -> float:
        return mu + (spread if uniform() < 0.5 else -spread) * sigma + gauss(0.0, 0.35 * sigma)

    world.rng.gauss = draw  # type: ignore[method-assign]
    return world


def test_the_labels_choose_whether_dwell_is_log_normal(catalog: Catalog) -> None:
    lognormal = PersonaMapper(catalog)
    train(lognormal, World(catalog, seed=6).visitors(800))
    assert lognormal.model.dwell_strength >= 1000  # the fit is (nearly) the whole prior
    bimodal = PersonaMapper(catalog)
    train(bimodal, _bimodal(World(catalog, seed=6)).visitors(800))
    assert bimodal.model.dwell_strength < 1000  # the bins keep a shape the fit misses
    fit = lognormal.model.dwell_fit()
    assert all(abs(sum(row) - 1.0) < 1e-9 and min(row) > 0 for row in fit)


def test_snapshots_keep_the_dwell_prior_and_older_ones_still_load(catalog: Catalog) -> None:
    from models.likelihood import GRID_D, TokenModel

    mapper = PersonaMapper(catalog)
    train(mapper, World(catalog, seed=6).visitors(300))
    back = PersonaMapper.from_snapshot(mapper.snapshot(), catalog)
    assert back.model.d_score == pytest.approx(mapper.model.d_score)
    assert back.model.dwell_strength == mapper.model.dwell_strength
    doc = mapper.model.to_dict()
    del doc["d_score"], doc["dwell_strength"]
    older = TokenModel.from_dict(doc, catalog)
    assert older.dwell_strength == 0.0  # the catalog's prior until new labels favour the fit
    assert older.d_score == [max(doc["a_score"]["d"])] * len(GRID_D)
