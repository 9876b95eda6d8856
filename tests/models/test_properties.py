"""Property: for any event sequence, probabilities are finite, >= 0 and sum to 1."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.catalog import PHASES, Catalog
from models.mapper import PersonaMapper
from models.rules import JourneyRules, next_phase
from tests.models.conftest import SAMPLE

CATALOG = Catalog.load(SAMPLE)
JOURNEY = JourneyRules(CATALOG)
PATHS = ["/", "/docs/x", "/pricing", "/blog/a", "/help", "/account", "/nope", "/customers"]
MAPPER = PersonaMapper(CATALOG, half_life_s=3600.0)
TRAINED = PersonaMapper(CATALOG, half_life_s=3600.0)
for _i, _persona in enumerate(CATALOG.persona_ids[:3] * 20):
    _state, _ = TRAINED.observe(
        TRAINED.new_state(),
        {
            "type": "page_view",
            "url": f"https://a.example{PATHS[_i % len(PATHS)]}",
            "ts": "2026-11-01T00:00:00Z",
        },
    )
    TRAINED.learn(_state, _persona)
BASE = datetime(2026, 11, 1, tzinfo=UTC)

texts = st.text(max_size=40)
ts = st.integers(min_value=-(10**7), max_value=10**8).map(
    lambda s: (BASE + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")
)
context = st.fixed_dictionaries(
    {},
    optional={
        "user_agent": st.one_of(
            texts, st.sampled_from(["Mozilla/5.0 (iPhone; CPU iPhone OS 18_1)"])
        ),
        "country": st.sampled_from(["US", "DE", "JP", "ZZ", ""]),
    },
)
page_view = st.fixed_dictionaries(
    {
        "type": st.just("page_view"),
        "ts": ts,
        "url": st.one_of(st.sampled_from(PATHS).map(lambda p: "https://acme.example" + p), texts),
        "context": context,
    },
    optional={
        "referrer": st.one_of(texts, st.just("https://www.google.com/")),
        "dwell_ms": st.integers(min_value=0, max_value=86_400_000),
    },
)
touchpoint = st.fixed_dictionaries(
    {
        "type": st.just("touchpoint"),
        "ts": ts,
        "channel": st.sampled_from(["email", "webinar", "form", "store", "event", "other"]),
        "action": st.sampled_from(["open", "click", "submit", "attend", "purchase", "other"]),
    }
)
other = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["feedback", "identify", "label"]),
        "ts": ts,
        "persona": st.sampled_from([*CATALOG.persona_ids, "ghost"]),
        "weight": st.floats(min_value=0.01, max_value=1.0),
    }
)
events = st.lists(st.one_of(page_view, touchpoint, other), max_size=40)


def _check(personas: dict[str, float]) -> None:
    assert list(personas) == CATALOG.persona_ids
    assert all(math.isfinite(p) and p >= 0.0 for p in personas.values())
    assert math.isclose(sum(personas.values()), 1.0, rel_tol=0, abs_tol=1e-9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.booleans())
def test_probabilities_are_a_distribution(seq: list[dict[str, Any]], trained: bool) -> None:
    mapper = TRAINED if trained else MAPPER
    state = mapper.new_state()
    _check(mapper.score(state))
    for event in seq:
        state, out = mapper.observe(state, {"visitor_id": "v", "event_id": "e", **event})
        _check(out["personas"])
        _check(mapper.score(state))
    _check(mapper.score(mapper.merge_states(state, state)))


feature_maps = st.dictionaries(
    st.sampled_from(["page", "touch", "action", "channel", "device"]),
    st.sampled_from(
        ["docs", "pricing", "help", "signup", "webinar:attend", "form:submit", "purchase", "x"]
    ),
)


@given(st.sampled_from(PHASES), feature_maps)
def test_indexed_journey_rules_agree_with_next_phase(
    current: str, features: dict[str, str]
) -> None:
    assert JOURNEY.next(current, features) == next_phase(CATALOG, current, features)
