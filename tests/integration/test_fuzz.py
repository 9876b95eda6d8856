"""schemathesis over the served OpenAPI, all checks, against the real API process (with a
worker, real Kafka and Redis), once with a key of each role. Bounded: 50 s with the admin key
(every route reachable), 25 s each with the read and the write key (their 403s and 404s).

Passing means: no 5xx, no response slower than 10 s, no contract failure (status codes,
content types, headers and bodies as documented; schema-valid requests accepted, invalid ones
refused; auth enforced). The counts are printed (pytest -s) and saved in
test-artifacts/fuzz-<role>.json.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ADMIN_KEY, READ_KEY, REPO, WRITE_KEY, Engine

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SECONDS = {"admin": 50, "read": 25, "write": 25}
HANG_S = 10.0


@pytest.fixture(scope="module")
def api(request: pytest.FixtureRequest) -> Iterator[Engine]:
    kafka = request.getfixturevalue("kafka_bootstrap")
    redis_url = request.getfixturevalue("redis_url")
    # Rate limits are tested in tests/stream_app/api/test_rate_limit.py; here they would
    # only turn the fuzzer's requests into 429s.
    eng = Engine(kafka, redis_url, uuid.uuid4().hex[:8], PERSONA_RATE_LIMIT_KEY_PER_S="0")
    eng.start("api")
    eng.start("worker")
    try:
        eng.wait_api()
        eng.wait_worker()
        yield eng
    except BaseException:
        sys.stderr.write(f"\n----- api log -----\n{eng.log('api')[-6000:]}\n")
        raise
    finally:
        eng.close()


@pytest.mark.parametrize(
    ("role", "key"), [("admin", ADMIN_KEY), ("read", READ_KEY), ("write", WRITE_KEY)]
)
def test_schemathesis_finds_nothing(api: Engine, role: str, key: str, tmp_path: Path) -> None:
    har = tmp_path / f"{role}.har"
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"http://127.0.0.1:{api.api_port}/openapi.json",
        "--checks",
        "all",
        "--max-time",
        str(SECONDS[role]),
        "--request-timeout",
        str(HANG_S),
        "--max-response-time",
        str(HANG_S),
        "--header",
        f"Authorization: Bearer {key}",
        "--workers",
        "2",
        "--seed",
        "12",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--no-color",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.integration.fuzz_hooks",
        "PYTHONPATH": str(REPO),
    }
    run = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=SECONDS[role] + 90
    )
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    statuses = collections.Counter(int(e["response"]["status"]) for e in entries)
    counts = {
        "role": role,
        "requests": len(entries),
        "2xx": sum(n for s, n in statuses.items() if 200 <= s < 300),
        "4xx": sum(n for s, n in statuses.items() if 400 <= s < 500),
        "5xx": sum(n for s, n in statuses.items() if s >= 500),
        "hangs_over_10s": sum(1 for e in entries if e["time"] > HANG_S * 1000),
        "slowest_ms": round(max((e["time"] for e in entries), default=0)),
        "statuses": dict(sorted(statuses.items())),
    }
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / f"fuzz-{role}.json").write_text(json.dumps(counts, indent=2))
    print(json.dumps(counts))
    summary = run.stdout[run.stdout.find("FAILURES") :] if "FAILURES" in run.stdout else ""
    report = summary[-8000:] or run.stdout[-8000:]
    assert run.returncode == 0, f"schemathesis ({role}) failed:\n{report}\n{run.stderr[-2000:]}"
    assert counts["requests"] > 40, counts  # it really ran
    assert counts["5xx"] == 0 and counts["hangs_over_10s"] == 0, counts
    assert counts["2xx"] > 0, counts  # and got past the refusals
