"""The dashboard page is self-contained and /v1/stats aggregates the workers' live numbers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from stream_app.api.app import create_app
from stream_app.collector.producer import EventProducer
from stream_app.settings import Settings
from stream_app.store import VisitorWrite
from stream_app.store.memory_store import MemoryStore


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def client(store: MemoryStore) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(admin_keys=[SecretStr("ak-1")])  # the dashboard's routes need admin
    app = create_app(settings, store=store, producer=EventProducer(settings), create_topics=False)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": "Bearer ak-1"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def test_dashboard_is_self_contained(client: httpx.AsyncClient) -> None:
    r = await client.get("/dashboard")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "<canvas" in r.text and "/v1/stats" in r.text
    external = re.findall(r'(?:src|href)\s*=\s*["\'](https?:)?//', r.text)
    assert external == [], "the page must not load anything from another host"


async def test_stats_sum_workers_and_compute_the_mix(
    client: httpx.AsyncClient, store: MemoryStore
) -> None:
    await store.put_worker_stats(
        "a",
        {
            "events_total": 100,
            "events_per_s": 40,
            "e2r_p99_s": 0.2,
            "lag_messages": 30,
            "top:tech_evaluator": 3,
        },
        15,
    )
    await store.put_worker_stats(
        "b",
        {
            "events_total": 50,
            "events_per_s": 10,
            "e2r_p99_s": 0.1,
            "lag_messages": 12,
            "top:casual_reader": 1,
        },
        15,
    )
    rec = {
        "visitor_id": "v1",
        "user_id": None,
        "events": 1,
        "phase": "awareness",
        "personas": {"tech_evaluator": 0.9, "casual_reader": 0.1},
        "top": {"persona": "tech_evaluator", "probability": 0.9},
    }
    await store.write(
        [
            VisitorWrite(
                rec,
                kpi=(
                    ("tech_evaluator", "nps_promoters", 1.0),
                    ("tech_evaluator", "nps_count", 1.0),
                ),
            )
        ]
    )
    found = [
        {
            "cluster": 1,
            "share": 0.2,
            "closest_persona": "casual_reader",
            "closest_persona_mean_probability": 0.31,
            "distinguishing": [{"feature": "page=careers", "share": 0.6, "lift": 5.1}],
        }
    ]
    await store.put_discovery("a", found, 60)
    s = (await client.get("/v1/stats")).json()
    assert s["candidates"] == [{**found[0], "worker": "a"}]
    assert s["totals"]["workers"] == 2
    assert s["totals"]["events_total"] == 150 and s["totals"]["events_per_s"] == 50
    assert s["totals"]["e2r_p99_s"] == 0.2
    assert s["totals"]["lag_messages"] == 42
    # No worker has counted its visitors yet: the share of records written.
    assert s["persona_mix_basis"] == "records_written"
    assert s["persona_mix"]["tech_evaluator"] == pytest.approx(0.75)
    assert sum(s["persona_mix"].values()) == pytest.approx(1.0)
    tech = next(p for p in s["personas"] if p["id"] == "tech_evaluator")
    assert tech["audience_size"] == 1 and tech["kpi"]["nps"] == 100.0


async def test_persona_mix_is_the_share_of_visitors_summed_over_workers(
    client: httpx.AsyncClient, store: MemoryStore
) -> None:
    a = {"top:tech_evaluator": 50, "visitors:tech_evaluator": 1, "visitors:casual_reader": 2}
    b = {"visitors:casual_reader": 1, "visitors:not_in_catalog": 9}
    await store.put_worker_stats("a", a, 15)
    await store.put_worker_stats("b", b, 15)
    s = (await client.get("/v1/stats")).json()
    assert s["persona_mix_basis"] == "visitors"
    assert s["persona_mix"]["tech_evaluator"] == pytest.approx(0.25)
    assert s["persona_mix"]["casual_reader"] == pytest.approx(0.75)
    assert "not_in_catalog" not in s["persona_mix"]


async def test_stats_list_the_model_drift_any_trainer_raises(
    client: httpx.AsyncClient, store: MemoryStore
) -> None:
    from prometheus_client import CollectorRegistry

    from stream_app.metrics import WorkerMetrics

    metrics = WorkerMetrics(CollectorRegistry())
    flags = {"log_loss": {"all": True, "casual_reader": False}, "persona_mix": {"x": False}}
    live = metrics.set_drift(flags)
    assert live == {"drift:log_loss:all": 1.0, "drift:log_loss:casual_reader": 0.0,
                    "drift:persona_mix:x": 0.0}  # fmt: skip
    text = metrics.render().decode()
    assert 'persona_model_drift{persona="all",signal="log_loss"} 1.0' in text
    await store.put_worker_stats("trainer", {"events_total": 1, **live}, 15)
    await store.put_worker_stats("other", {"events_total": 1}, 15)
    s = (await client.get("/v1/stats")).json()
    assert s["model_drift"] == [{"signal": "log_loss", "persona": "all"}]
