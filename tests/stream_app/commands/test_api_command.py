"""``persona-stream api``: uvloop + httptools named explicitly, ``--workers N`` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from stream_app.cli import build_parser
from stream_app.commands import api
from stream_app.settings import Settings
from tests.integration.conftest import REPO, free_port


def test_one_process_runs_on_uvloop_and_httptools(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    args = build_parser().parse_args(["api", "--port", "9123"])
    assert api.run(args, Settings()) == 0
    assert (seen["loop"], seen["port"]) == ("uvloop", 9123)
    assert seen["http"] == "stream_app.api.server:HttpToolsProtocol"  # httptools, one write
    config = uvicorn.Config(app=seen["app"], http=seen["http"], loop="uvloop")
    config.load()
    assert issubclass(config.http_protocol_class, HttpToolsProtocol)
    assert seen["proxy_headers"] is False  # X-Forwarded-For is ours to judge
    assert "workers" not in seen


def test_workers_run_the_app_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    args = build_parser().parse_args(["api", "--workers", "3"])
    assert api.run(args, Settings()) == 0
    assert seen["app"] == "stream_app.api.app:create_app_from_env"
    assert (seen["factory"], seen["workers"], seen["loop"]) == (True, 3, "uvloop")


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return out


@pytest.mark.integration
def test_two_worker_processes_serve_lookups(redis_url: str, tmp_path: Path) -> None:
    prefix = f"t:{uuid.uuid4().hex[:8]}:"
    port = free_port()
    client = redis.Redis.from_url(redis_url)
    record = {"visitor_id": "v-w", "personas": {"a": 1.0}, "top": {"persona": "a"}}
    client.set(f"{prefix}visitor:v-w", json.dumps(record), ex=120)
    env = {
        **os.environ,
        "PERSONA_REDIS_URL": redis_url,
        "PERSONA_REDIS_PREFIX": prefix,
        "PERSONA_KAFKA_TIMEOUT_S": "2",
        "PERSONA_READ_KEYS": '["k-read"]',
    }
    log = open(tmp_path / "api.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_app.cli", "api", "--port", str(port), "--workers", "2"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        answered = None
        while time.monotonic() < deadline and answered is None:
            assert proc.poll() is None, (tmp_path / "api.log").read_text()
            try:
                answered = httpx.get(
                    f"http://127.0.0.1:{port}/v1/visitors/v-w",
                    headers={"Authorization": "Bearer k-read"},
                    timeout=2,
                )
            except httpx.HTTPError:
                time.sleep(0.3)
        assert answered is not None, (tmp_path / "api.log").read_text()
        assert answered.status_code == 200 and answered.json() == record
        # uvicorn's supervisor plus two serving processes (multiprocessing may add a helper).
        assert len([c for c in children(proc.pid) if c != proc.pid]) >= 2
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
        client.delete(f"{prefix}visitor:v-w")
        client.close()
