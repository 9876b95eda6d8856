"""Recovery ends by seeking the stream partitions while they are still paused, then
resuming flow control (which clears the stream queues), then resuming the partitions.
faust's own order (resume → seek → clear) lost records after a restart."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from faust.tables.recovery import Recovery

from stream_app.settings import Settings
from stream_app.worker.app import create_app
from stream_app.worker.recovery import SeekFirstRecovery


def fake_recovery(calls: list[str], generation: int = 3) -> Any:
    def record(name: str) -> Any:
        def sync(*args: Any) -> None:
            calls.append(name)

        return sync

    def arecord(name: str) -> Any:
        async def coro(*args: Any, **kwargs: Any) -> None:
            calls.append(name)

        return coro

    consumer = SimpleNamespace(
        assignment=lambda: {("events", 0), ("visitors-changelog", 0)},
        perform_seek=arecord("seek"),
        resume_flow=record("resume_flow"),
        resume_partitions=lambda tps: calls.append(f"resume_partitions {sorted(tps)}"),
    )
    app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=generation,
        conf=SimpleNamespace(broker_request_timeout=5.0),
        on_rebalance_complete=SimpleNamespace(send=arecord("rebalance_complete")),
        flow_control=SimpleNamespace(resume=record("flow_control.resume (clears queues)")),
        _fetcher=SimpleNamespace(maybe_start=arecord("fetcher")),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=record("rebalance_end"),
    )

    async def wait(coro: Any, **kwargs: Any) -> Any:
        return await coro

    tables = SimpleNamespace(
        values=lambda: [],
        on_actives_ready=record("actives_ready"),
        on_standbys_ready=record("standbys_ready"),
    )
    return SimpleNamespace(
        app=app,
        log=SimpleNamespace(info=lambda *a: None, dev=lambda *a: None, warning=record("warning")),
        _set_recovery_ended=record("recovery_ended"),
        tables=tables,
        actives_for_table={},
        standbys_for_table={},
        _is_changelog_tp=lambda tp: tp[0].endswith("-changelog"),
        _wait=wait,
        completed=asyncio.Event(),
    )


def test_stream_partitions_are_sought_before_they_are_resumed_and_queues_cleared() -> None:
    calls: list[str] = []
    rec = fake_recovery(calls)
    asyncio.run(SeekFirstRecovery.on_recovery_completed(cast(Any, rec), 3))
    seek = calls.index("seek")
    clear = calls.index("flow_control.resume (clears queues)")
    resume = calls.index("resume_partitions [('events', 0)]")  # stream partitions only
    assert seek < clear < resume < calls.index("fetcher")
    assert rec.completed.is_set()


def test_faust_itself_resumes_before_seeking_which_is_why_this_exists() -> None:
    """If a faust upgrade fixes the order, this fails: then drop SeekFirstRecovery."""
    calls: list[str] = []
    rec = fake_recovery(calls)
    asyncio.run(Recovery.on_recovery_completed(cast(Any, rec), 3))
    assert calls.index("resume_partitions [('events', 0)]") < calls.index("seek")


def test_a_newer_rebalance_stops_before_seeking_or_resuming() -> None:
    calls: list[str] = []
    rec = fake_recovery(calls, generation=4)
    asyncio.run(SeekFirstRecovery.on_recovery_completed(cast(Any, rec), 3))
    assert "seek" not in calls and not any(c.startswith("resume_partitions") for c in calls)
    assert "warning" in calls and not rec.completed.is_set()


def test_the_worker_app_uses_the_seek_first_recovery() -> None:
    app = create_app(Settings(kafka_bootstrap="127.0.0.1:1"))
    assert isinstance(app.tables.recovery, SeekFirstRecovery)
