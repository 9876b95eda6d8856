"""Load on ONE API process with Debian's ``wrk``: lookups, single events, batches, Segment.

    .venv/bin/python bench/bench_api.py [--seconds 10] [--connections 16] [--workers 1]
        [--visitors 20000] [--only lookup,event,batch,segment] [--no-half]
        [--write-key KEY --read-key KEY]   # with auth on (INTERFACES.md section 3)
        [--url http://127.0.0.1:8000]      # an API that is already running (else one is started)
        [--py-spy OUT.txt]                 # profile the started API (py-spy, collapsed stacks)

Needs ``wrk`` (``deploy/local/install.sh`` installs it), the local Kafka and Redis. Unless
``--url`` is given it starts ``persona-stream api --workers N`` on a free port with its own
Redis prefix and events topic, and removes both at the end.

The population: ``--visitors`` simulated visitors (``models.simulator``); each gets a
lookup record in Redis as the worker writes it (every tenth is looked up by its user id,
which the lookup resolves inside Redis). The wrk Lua scripts rotate over those real ids:
lookups ask for 5,000 of them, events are theirs (simulated events with fresh ``event_id``s and
without ``context.country``, so the collector's location step runs; a ``CF-IPCountry``
header gives it the country).

For each scenario it prints requests/s, events/s and latency p50/p99/p99.9 (wrk's own
histogram, read in the Lua ``done`` hook) at full load, then at about half that rate.

Half rate: Debian's wrk 4.1 has no ``-R`` (that is wrk2), so each connection waits a random
0..2d ms after every answer (wrk's Lua ``delay()``), with d chosen from the full-load rate
and corrected once from a first paced run; the rate reached is measured and printed. This
is a closed loop: a slow answer delays the next request of its connection, so unlike wrk2
it does not count the time requests would have waited (coordinated omission).

``--py-spy OUT`` runs the started API under ``py-spy record`` (250 Hz, collapsed stacks, a
dev dependency) and writes the profile of the whole run to OUT when the API stops; use it
with ``--only`` for one scenario. The CPU columns then count the API process(es) only, not
py-spy, but sampling slows the API: profile and measure in separate runs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", category=DeprecationWarning)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402

from models.catalog import Catalog  # noqa: E402
from models.simulator import Simulator  # noqa: E402
from stream_app.settings import DEFAULT_CATALOG, Settings  # noqa: E402
from stream_app.store.keys import Keys  # noqa: E402

# wrk's Lua: the request body/paths are chosen per request; done() prints one JSON line.
LUA_COMMON = r"""
local counter = 0
local thread_id = 0
local threads = {}
local pause = __DELAY__

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + thread_id * 7919)
  counter = thread_id * 100000000
end

if pause > 0 then
  function delay()
    return math.random() * 2 * pause
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "p999_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
"""

LUA_LOOKUP = r"""
local ids = {__IDS__}
local headers = {__HEADERS__}
function request()
  counter = counter + 1
  return wrk.format("GET", "/v1/visitors/" .. ids[math.random(#ids)], headers)
end
"""

# One event per request; the template has @ID@ (event id) and @VID@ (visitor id).
LUA_TEMPLATES = r"""
local templates = {__TEMPLATES__}
local ids = {__IDS__}
local headers = {__HEADERS__}
local path = "__PATH__"
local per_request = __PER_REQUEST__
local prefix, between, suffix = __WRAP__
function request()
  local parts = {}
  for i = 1, per_request do
    counter = counter + 1
    local body = templates[math.random(#templates)]
    body = body:gsub("@ID@", "b" .. counter):gsub("@VID@", ids[math.random(#ids)])
    parts[i] = body
  end
  return wrk.format("POST", path, headers, prefix .. table.concat(parts, between) .. suffix)
end
"""


def lua_str(value: str) -> str:
    # A JSON string (raw UTF-8, no \u escapes: LuaJIT has none) is a Lua string literal.
    return json.dumps(value, ensure_ascii=False)


def lua_list(values: list[str]) -> str:
    return ", ".join(lua_str(v) for v in values)


def lua_headers(headers: dict[str, str]) -> str:
    return ", ".join(f"[{lua_str(k)}] = {lua_str(v)}" for k, v in headers.items())


@dataclass
class Result:
    name: str
    events_per_request: int
    connections: int
    requests: int
    seconds: float
    non_2xx: int
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    load: str
    cpu_s: float = 0.0  # CPU seconds the API process(es) used during the run

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.cpu_s / self.requests if self.requests else 0.0

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.seconds if self.seconds else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        return (
            f"| {self.name} | {self.connections} | {self.rps:,.0f} | "
            f"{self.rps * self.events_per_request:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} | "
            f"{self.p999_ms:.2f} | {self.non_2xx + self.errors} | {self.cpu_us_per_request:,.0f} | "
            f"{100 * self.cpu_share:.0f}% | {self.load} |"
        )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (those still running)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def process_tree(root: int) -> list[int]:
    """``root`` and its children (uvicorn's --workers processes)."""
    pids = [root]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            pids.append(int(stat.parent.name))
    return pids


API_PIDS: list[int] = []  # the API processes being measured (empty: not ours, not measured)


def run_wrk(
    url: str, script: str, seconds: float, connections: int, name: str, per_request: int
) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        threads = min(2, connections)
        cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s"]
        cmd += ["--timeout", "5s", "-s", path, url]
        cpu_before = cpu_seconds(API_PIDS)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        cpu = cpu_seconds(API_PIDS) - cpu_before
    finally:
        os.unlink(path)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith('{"requests"')), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary: {out.stdout}\n{out.stderr}")
    s = json.loads(line)
    return Result(
        name,
        per_request,
        connections,
        s["requests"],
        s["duration_us"] / 1e6,
        s["non_2xx"],
        s["errors"],
        s["p50_us"] / 1000,
        s["p99_us"] / 1000,
        s["p999_us"] / 1000,
        load_average(),
        cpu,
    )


def population(catalog: Catalog, n: int, seed: int) -> Iterator[tuple[str, str, list[Any]]]:
    """(visitor id, true persona, that visitor's simulated events)."""
    sim = Simulator(catalog, seed=seed)
    for v in sim.visitors(n):
        yield v.visitor_id, v.persona, v.events


def seed_redis(redis: Redis, keys: Keys, catalog: Catalog, n: int) -> tuple[list[str], list[Any]]:
    """Write a lookup record per visitor; returns the ids to look up and sample events."""
    personas = catalog.persona_ids
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    lookup_ids: list[str] = []
    samples: list[Any] = []
    pipe = redis.pipeline(transaction=False)
    for i, (vid, persona, events) in enumerate(population(catalog, n, seed=11)):
        probs = {p: (0.6 if p == persona else 0.4 / (len(personas) - 1)) for p in personas}
        user_id = f"u-{vid[4:16]}" if i % 10 == 0 else None
        record = {
            "visitor_id": vid,
            "user_id": user_id,
            "personas": probs,
            "top": {"persona": persona, "probability": 0.6},
            "phase": "consideration",
            "events": len(events),
            "feedback": {"nps": None, "csat": None, "ces": None},
            "model_version": 1,
            "updated_at": now,
            "last_seen": now,
            "merged_visitor_ids": [],
        }
        pipe.set(keys.visitor(vid), json.dumps(record, separators=(",", ":")), ex=3600)
        if user_id:
            pipe.set(keys.user(user_id), vid, ex=3600)
        lookup_ids.append(user_id or vid)
        if len(samples) < 200:
            samples.extend(events[:2])
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    return lookup_ids, samples


def native_template(event: dict[str, Any]) -> str:
    e = {k: v for k, v in event.items() if k not in ("event_id", "visitor_id")}
    ctx = {k: v for k, v in e.get("context", {}).items() if k != "country"}
    if ctx:
        e["context"] = ctx
    e["ts"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    body = json.dumps({"event_id": "@ID@", "visitor_id": "@VID@", **e}, separators=(",", ":"))
    return body


def segment_template(event: dict[str, Any]) -> str:
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    ctx = event.get("context", {})
    msg: dict[str, Any] = {"messageId": "@ID@", "anonymousId": "@VID@", "timestamp": ts}
    msg["context"] = {
        "userAgent": ctx.get("user_agent", ""),
        "locale": "en-US",
        "location": {"country": "Germany"},
    }
    if event["type"] == "page_view":
        msg["type"] = "page"
        msg["context"]["page"] = {"url": event["url"], "referrer": event.get("referrer", "")}
        if "dwell_ms" in event:
            msg["properties"] = {"dwell_ms": event["dwell_ms"]}
    else:
        msg["type"] = "track"
        msg["event"] = "Webinar Attended"
        msg["properties"] = {"channel": "webinar", "action": "attend"}
    return json.dumps(msg, separators=(",", ":"))


class Api:
    """``persona-stream api`` on a free port, with its own Redis prefix and events topic."""

    def __init__(
        self, workers: int, env: dict[str, str], log: Path, profile: Path | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.profiled = profile is not None
        cmd = [sys.executable, "-m", "stream_app.cli", "api", "--port", str(self.port)]
        cmd += ["--workers", str(workers), "--log-level", "warning"]
        if profile is not None:
            spy = str(Path(sys.executable).with_name("py-spy"))
            cmd = [spy, "record", "-r", "250", "-f", "raw", "-o", str(profile)]
            cmd += ["--subprocesses", "--", sys.executable, "-m", "stream_app.cli", "api"]
            cmd += ["--port", str(self.port), "--workers", str(workers), "--log-level", "warning"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API exited: {log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise RuntimeError("the API did not answer /healthz within 60 s")

    def api_pids(self) -> list[int]:
        """The API process(es): under py-spy, its child (and that one's workers)."""
        pids = process_tree(self.proc.pid)
        if self.profiled:
            pids = [p for child in pids if child != self.proc.pid for p in process_tree(child)]
        return pids

    def stop(self) -> None:
        if self.profiled:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)  # py-spy writes its profile, then exits
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(30)
            # the API itself outlives py-spy: stopped with the rest of its process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def half_rate(
    url: str, build: Any, full: Result, seconds: float, connections: int, per_request: int
) -> Result:
    """Pace each connection (random 0..2d ms between requests) to about half ``full``'s rate."""
    target = full.rps / 2
    service_ms = full.p50_ms / 2  # the answer time at a lighter load, roughly
    pause = max(0.0, 1000 * connections / target - service_ms)
    paced = run_wrk(url, build(pause), seconds, connections, full.name + " ½", per_request)
    if paced.rps > 0 and abs(paced.rps - target) / target > 0.1:
        pause = max(0.0, pause * paced.rps / target)
        paced = run_wrk(url, build(pause), seconds, connections, full.name + " ½", per_request)
    return paced


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="API processes (--workers N)")
    parser.add_argument("--visitors", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="events per batch request")
    parser.add_argument("--only", default="lookup,event,batch,segment")
    parser.add_argument("--no-half", action="store_true", help="skip the half-rate runs")
    parser.add_argument("--url", help="an API already running (its Redis must be ours)")
    parser.add_argument("--write-key", help="sent as Bearer (native) and Basic (Segment)")
    parser.add_argument("--read-key", help="sent as Bearer on lookups")
    parser.add_argument("--py-spy", help="profile the started API with py-spy into this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: bash deploy/local/install.sh installs Debian's wrk")
        return 2

    tag = uuid.uuid4().hex[:8]
    base = Settings()
    prefix = f"bench-api-{tag}:" if not args.url else base.redis_prefix
    topic = f"bench-api-{tag}.events"
    env = {**os.environ, "PERSONA_REDIS_PREFIX": prefix, "PERSONA_TOPIC_EVENTS": topic}
    # wrk is one client IP: with the default limits (50/s per IP) nearly every request is a
    # 429. The buckets are still checked on every request, only set out of the way.
    for limit in ("IP_PER_S", "IP_BURST", "KEY_PER_S", "KEY_BURST"):
        env.setdefault(f"PERSONA_RATE_LIMIT_{limit}", "1000000")
    if args.write_key:
        env.setdefault("PERSONA_WRITE_KEYS", json.dumps([args.write_key]))
    if args.read_key:
        env.setdefault("PERSONA_READ_KEYS", json.dumps([args.read_key]))
    redis = Redis.from_url(base.redis_url.get_secret_value())
    catalog = Catalog.load(base.catalog_path or DEFAULT_CATALOG)
    print(f"seeding {args.visitors:,} simulated visitors into Redis (prefix {prefix}) ...")
    ids, samples = seed_redis(redis, Keys(prefix), catalog, args.visitors)

    api: Api | None = None
    log = Path(tempfile.gettempdir()) / f"bench-api-{tag}.log"
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            api = Api(args.workers, env, log, Path(args.py_spy) if args.py_spy else None)
            url = api.url
            time.sleep(1.0)  # uvicorn's worker processes are up once /healthz answers
            API_PIDS[:] = api.api_pids()
        read_headers: dict[str, str] = {}
        write_headers = {"Content-Type": "application/json", "CF-IPCountry": "DE"}
        segment_headers = {"Content-Type": "application/json"}
        if args.read_key:
            read_headers["Authorization"] = f"Bearer {args.read_key}"
        if args.write_key:
            write_headers["Authorization"] = f"Bearer {args.write_key}"
            basic = base64.b64encode(f"{args.write_key}:".encode()).decode()
            segment_headers["Authorization"] = f"Basic {basic}"
        native = [native_template(e) for e in samples]
        segment = [segment_template(e) for e in samples]
        scenarios = {
            "lookup": (1, LUA_LOOKUP, {"__HEADERS__": lua_headers(read_headers)}),
            "event": (
                1,
                LUA_TEMPLATES,
                {
                    "__TEMPLATES__": lua_list(native),
                    "__WRAP__": '"", "", ""',
                    "__PATH__": "/v1/events",
                    "__HEADERS__": lua_headers(write_headers),
                },
            ),
            "batch": (
                args.batch,
                LUA_TEMPLATES,
                {
                    "__TEMPLATES__": lua_list(native),
                    "__WRAP__": '\'{"events":[\', ",", "]}"',
                    "__PATH__": "/v1/events",
                    "__HEADERS__": lua_headers(write_headers),
                },
            ),
            "segment": (
                args.batch,
                LUA_TEMPLATES,
                {
                    "__TEMPLATES__": lua_list(segment),
                    "__WRAP__": '\'{"batch":[\', ",", "]}"',
                    "__PATH__": "/v1/batch",
                    "__HEADERS__": lua_headers(segment_headers),
                },
            ),
        }
        lookup_ids = ids[:5000]  # wrk's Lua table: enough ids to spread over Redis
        results: list[Result] = []
        for name in args.only.split(","):
            per_request, body, subs = scenarios[name]

            def build(
                pause: float, body: str = body, subs: dict[str, str] = subs, n: int = per_request
            ) -> str:
                text = LUA_COMMON.replace("__DELAY__", f"{pause:.3f}") + body
                fills = {**subs, "__IDS__": lua_list(lookup_ids), "__PER_REQUEST__": str(n)}
                for key, value in fills.items():
                    text = text.replace(key, value)
                return text

            conns = args.connections if per_request == 1 else min(args.connections, 4)
            label = name if per_request == 1 else f"{name} of {per_request}"
            full = run_wrk(url, build(0), args.seconds, conns, label, per_request)
            results.append(full)
            print(f"  {label}: {full.rps:,.0f} req/s, p99 {full.p99_ms:.2f} ms", flush=True)
            if not args.no_half:
                half = half_rate(url, build, full, args.seconds, conns, per_request)
                results.append(half)
                print(f"  {half.name}: {half.rps:,.0f} req/s, p99 {half.p99_ms:.2f} ms")
        workers = f"{args.workers} API process(es)" if not args.url else url
        print(f"\n{workers}, {args.seconds:g} s per run, {len(ids):,} visitors")
        columns = ["scenario", "conns", "req/s", "events/s", "p50 ms", "p99 ms", "p99.9 ms"]
        columns += ["errors", "API CPU µs/req", "API CPU", "load avg"]
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for r in results:
            print(r.row())
        failed = [r for r in results if r.non_2xx + r.errors]
        for r in failed:
            print(
                f"INVALID: {r.name} had {r.non_2xx} non-2xx answers and {r.errors} socket "
                f"errors in {r.requests:,} requests; its req/s counts refusals, not work "
                f"(API log: {log})"
            )
        return 1 if failed else 0
    finally:
        if api is not None:
            api.stop()
            _drop_topic(base, topic)
        for key in redis.scan_iter(match=f"{prefix}*", count=5000) if not args.url else []:
            redis.delete(key)


def _drop_topic(settings: Settings, topic: str) -> None:
    try:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
    except Exception as exc:  # a leftover bench topic is harmless; say so
        print(f"could not delete topic {topic}: {exc!r}")


if __name__ == "__main__":
    raise SystemExit(main())
