"""End-to-end benchmark of one worker process on the local Kafka and Redis.

    .venv/bin/python bench/bench_engine.py [--events 200000] [--probes 400]

Needs the local broker and Redis (``bash deploy/local/infra.sh start``). Prints:

1. **throughput**: events pre-loaded into a fresh events topic (simulated traffic), then
   one ``persona-stream worker`` started; events/s = events / time until the consumer
   group's committed offsets reach the end of the topic (commit interval 1 s included).
2. **event-to-Redis latency** at a fixed rate (default: half the measured throughput):
   background traffic plus probe events of fresh visitors; latency = time from the
   producer's send to the probe's record appearing in Redis (polled every 2 ms).
3. **Redis bytes per visitor**: ``used_memory`` growth divided by visitors written.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", category=DeprecationWarning)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.errors import KafkaError  # noqa: E402
from redis import Redis  # noqa: E402

from models.catalog import Catalog  # noqa: E402
from models.simulator import Simulator  # noqa: E402
from stream_app.settings import DEFAULT_CATALOG, Settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream_app.cli", "worker", "--loglevel", "warning"],
            cwd=ROOT,
            env=env,
            stdout=open(log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def probe_event(url: str = "https://x.example/pricing") -> dict[str, Any]:
    """A page view of a fresh visitor, sent to see when (and by which model) it is stored."""
    pid = f"probe-{uuid.uuid4().hex}"
    return {
        "event_id": pid,
        "type": "page_view",
        "visitor_id": pid,
        "ts": datetime.now(UTC).isoformat(),
        "url": url,
    }


def committed(admin: KafkaAdminClient, group: str, topic: str) -> int:
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except KafkaError:  # e.g. the coordinator of a fresh broker is not there yet
        return 0
    return sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset > 0)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def worker_metrics(port: int) -> str:
    """Batch count, mean batch size and mean pipeline / Redis time from the worker's /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError as exc:
        return f"worker metrics unavailable: {exc}"
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if line.startswith("persona_worker_") and "{" not in name:
            values[name] = float(value)
        elif line.startswith("persona_worker_events_processed_total{"):
            values["events"] = values.get("events", 0.0) + float(value)
    batches = values.get("persona_worker_batch_duration_seconds_count", 0.0)
    if not batches:
        return "worker metrics: no batches"
    pipeline = values.get("persona_worker_batch_duration_seconds_sum", 0.0)
    redis_s = values.get("persona_worker_redis_write_duration_seconds_sum", 0.0)
    events = values.get("events", 0.0)
    return (
        f"worker: {batches:.0f} batches, {events / batches:.0f} events per batch; "
        f"per event: pipeline {1e6 * pipeline / max(events, 1):.0f} µs, "
        f"Redis write {1e6 * redis_s / max(events, 1):.0f} µs (wall)"
    )


def latency_buckets(port: int) -> dict[float, float]:
    """The worker's event-to-Redis histogram (cumulative count per upper bound, s)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("persona_worker_event_to_redis_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rpartition(" ")[2])
    return out


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> str:
    """The upper bound of the bucket holding quantile ``q`` of the events between two
    readings of the histogram."""
    diff = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = diff[-1][1] if diff else 0.0
    for le, n in diff:
        if total and n >= q * total:
            return f"≤ {le * 1000:.0f} ms" if le != float("inf") else "> last bucket"
    return "n/a"


def end_offsets(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--probes", type=int, default=400)
    parser.add_argument("--rate", type=float, default=0, help="latency phase rate (0 = half)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--py-spy", metavar="FILE", help="sample the worker with py-spy during phase 1 (raw)"
    )
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{tag}-"))
    overrides = {
        "PERSONA_TOPIC_EVENTS": f"bench-{tag}.events",
        "PERSONA_TOPIC_DLQ": f"bench-{tag}.dlq",
        "PERSONA_TOPIC_ASSIGNMENTS": f"bench-{tag}.assignments",
        "PERSONA_TOPIC_MODELS": f"bench-{tag}.models",
        "PERSONA_TOPIC_PARTITIONS": str(args.partitions),
        "PERSONA_CONSUMER_GROUP": f"bench-{tag}",
        "PERSONA_REDIS_PREFIX": f"bench:{tag}:",
        "PERSONA_WORKER_WEB_PORT": str(16000 + int(tag[:3], 16) % 2000),
        "PERSONA_WORKER_DATA_DIR": str(tmp / "worker"),
    }
    os.environ.update(overrides)
    env = dict(os.environ)
    settings = Settings()
    topic, group = settings.topic_events, settings.consumer_group
    redis = Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    print(f"# bench tag {tag}: kafka {settings.kafka_bootstrap}, {args.partitions} partitions")

    import asyncio

    from stream_app.topics import ensure_topics

    asyncio.run(ensure_topics(settings))

    # ---- 1. throughput on a pre-loaded topic ------------------------------------------
    sim = Simulator(Catalog.load(DEFAULT_CATALOG), seed=3, labelled_fraction=0.02)
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
    )
    n = 0
    visitors: set[str] = set()
    started = time.perf_counter()
    for event in sim.stream(args.events // 8 + 1, concurrency=500):
        producer.send(topic, key=event["visitor_id"].encode(), value=json.dumps(event).encode())
        visitors.add(event["visitor_id"])
        n += 1
        if n >= args.events:
            break
    producer.flush()
    print(
        f"preloaded {n} events of {len(visitors)} visitors in {time.perf_counter() - started:.1f}s"
    )
    mem_before = int(redis.info("memory")["used_memory"])

    worker = Worker(env, tmp / "worker.log")
    spy = None
    if args.py_spy:
        spy = subprocess.Popen(
            [
                *(str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw"),
                *("--rate", "100", "-o", args.py_spy),
                *("--pid", str(worker.proc.pid)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        total = end_offsets(settings.kafka_bootstrap, topic, args.partitions)
        t0 = time.perf_counter()
        first = None
        while True:
            done = committed(admin, group, topic)
            if first is None and done > 0:
                first = (time.perf_counter(), done)
                cpu0, busy0 = cpu_seconds(worker.proc.pid), machine_busy()
                rss0 = rss_bytes(worker.proc.pid)
            if done >= total:
                break
            if worker.proc.poll() is not None:
                raise SystemExit(f"worker exited: {(tmp / 'worker.log').read_text()[-3000:]}")
            if time.perf_counter() - t0 > 900:
                raise SystemExit("timed out")
            time.sleep(0.2)
        t_end = time.perf_counter()
        cpu1, busy1 = cpu_seconds(worker.proc.pid), machine_busy()
        rss1 = rss_bytes(worker.proc.pid)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        assert first is not None
        steady = (total - first[1]) / max(t_end - first[0], 1e-9)
        overall = total / (t_end - t0)
        print(
            f"throughput: {total} events; {steady:,.0f} events/s after the first commit, "
            f"{overall:,.0f} events/s including start-up ({t_end - t0:.1f}s)"
        )
        span = max(t_end - first[0], 1e-9)
        print(worker_metrics(int(overrides["PERSONA_WORKER_WEB_PORT"])))
        print(
            f"cpu after the first commit: worker {100 * (cpu1 - cpu0) / span:.0f}% of one core "
            f"({1e6 * (cpu1 - cpu0) / max(total - first[1], 1):.0f} µs CPU per event), machine "
            f"{100 * (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1):.0f}% of all cores"
        )
        print(
            f"worker memory: RSS {rss0 / 2**20:,.0f} MiB at the first commit, "
            f"{rss1 / 2**20:,.0f} MiB holding all {len(visitors)} visitors "
            f"({(rss1 - rss0) / max(len(visitors), 1):,.0f} bytes per visitor of growth since)"
        )
        time.sleep(1.0)
        written = sum(
            1 for _ in redis.scan_iter(match=f"{settings.redis_prefix}visitor:*", count=5000)
        )
        mem_after = int(redis.info("memory")["used_memory"])
        per_visitor = (mem_after - mem_before) / max(written, 1)
        print(
            f"redis: {written} visitor records, {mem_after - mem_before:,} bytes -> "
            f"{per_visitor:,.0f} bytes per visitor (record + audiences + identity + aliases)"
        )

        # ---- 2. latency at a fixed rate ---------------------------------------------
        rate = args.rate or steady / 2
        probes: dict[str, float] = {}
        acked: dict[str, float] = {}  # the broker acknowledged the probe (acks=all)
        seen: dict[str, float] = {}
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                pending = [p for p in list(probes) if p not in seen]
                if pending:
                    keys = [f"{settings.redis_prefix}visitor:{p}" for p in pending]
                    now = time.perf_counter()
                    for p, v in zip(pending, redis.mget(keys), strict=True):
                        if v is not None:
                            seen[p] = now
                time.sleep(0.002)

        port = int(overrides["PERSONA_WORKER_WEB_PORT"])
        hist_before = latency_buckets(port)
        cpu_lat0, busy_lat0, bench_cpu0 = (
            cpu_seconds(worker.proc.pid),
            machine_busy(),
            time.process_time(),
        )
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        lat_producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=2
        )
        # Generated and encoded before the phase. The background traffic is sent by
        # bench/traffic.py in a process of its own with aiokafka record batches: the bench
        # shares the 2 cores with the worker, Kafka and Redis, and kafka-python's producer
        # took 80-90% of a core at 7,000 events/s, competing with the worker it measures.
        # This process sends only the probes (20 per second) and polls Redis for them.
        duration = args.probes / 20  # 20 probes per second
        stream = sim.stream(10**9, concurrency=500)
        traffic_file = tmp / "traffic.jsonl"
        with open(traffic_file, "wb") as f:
            for e, _ in zip(stream, range(int(rate * duration * 1.1) + 100), strict=False):
                f.write(json.dumps(e).encode() + b"\n")
        traffic = subprocess.Popen(
            [
                *(sys.executable, str(ROOT / "bench" / "traffic.py")),
                *("--bootstrap", settings.kafka_bootstrap, "--topic", topic),
                *("--rate", str(rate), "--seconds", str(duration), "--input", str(traffic_file)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        start = time.perf_counter()
        next_probe = start
        while time.perf_counter() - start < duration:
            now = time.perf_counter()
            if now >= next_probe:
                probe = probe_event()
                pid = probe["visitor_id"]
                future = lat_producer.send(
                    topic, key=pid.encode(), value=json.dumps(probe).encode()
                )
                probes[pid] = time.perf_counter()
                future.add_callback(lambda _, p=pid: acked.__setitem__(p, time.perf_counter()))
                next_probe += 1 / 20
            time.sleep(max(0.0, min(0.005, next_probe - time.perf_counter())))
        out, _ = traffic.communicate(timeout=120)
        if traffic.returncode != 0:
            raise SystemExit(f"bench/traffic.py failed (exit {traffic.returncode})")
        sent_by = json.loads(out.strip().splitlines()[-1])
        sent = int(sent_by["sent"])
        lat_producer.flush()
        deadline = time.perf_counter() + 30
        while len(seen) < len(probes) and time.perf_counter() < deadline:
            time.sleep(0.05)
        stop.set()
        hist_after = latency_buckets(port)
        lat_span = time.perf_counter() - start
        cpu_lat1, busy_lat1 = cpu_seconds(worker.proc.pid), machine_busy()
        lat_ms = [(seen[p] - probes[p]) * 1000 for p in probes if p in seen]
        achieved = sent / duration
        print(
            f"latency at {achieved:,.0f} events/s (target {rate:,.0f}): "
            f"{len(lat_ms)}/{len(probes)} probes, "
            f"p50 {statistics.median(lat_ms):.0f} ms, p90 {pct(lat_ms, 0.9):.0f} ms, "
            f"p99 {pct(lat_ms, 0.99):.0f} ms, max {max(lat_ms):.0f} ms"
        )
        from_ack = [(seen[p] - acked[p]) * 1000 for p in probes if p in seen and p in acked]
        to_ack = [(acked[p] - probes[p]) * 1000 for p in probes if p in acked]
        if from_ack and to_ack:
            print(
                f"  of which send to broker ack: p50 {statistics.median(to_ack):.0f} ms, "
                f"p99 {pct(to_ack, 0.99):.0f} ms; broker ack to Redis: "
                f"p50 {statistics.median(from_ack):.0f} ms, p99 {pct(from_ack, 0.99):.0f} ms"
            )
        print(
            f"worker's own event-to-Redis histogram over that phase (Kafka timestamp to commit): "
            f"p50 {bucket_quantile(hist_before, hist_after, 0.5)}, "
            f"p99 {bucket_quantile(hist_before, hist_after, 0.99)}; worker "
            f"{100 * (cpu_lat1 - cpu_lat0) / lat_span:.0f}% of one core, this bench process "
            f"{100 * (time.process_time() - bench_cpu0) / lat_span:.0f}% and its traffic process "
            f"{100 * sent_by['cpu_s'] / sent_by['seconds']:.0f}%, machine "
            f"{100 * (busy_lat1[0] - busy_lat0[0]) / max(busy_lat1[1] - busy_lat0[1], 1):.0f}% "
            "of all cores"
        )
        lat_producer.close()
    finally:
        worker.stop()
        producer.close()
        keys = list(redis.scan_iter(match=f"{settings.redis_prefix}*", count=5000))
        for i in range(0, len(keys), 5000):
            redis.delete(*keys[i : i + 5000])
        admin.delete_topics(
            [topic, settings.topic_dlq, settings.topic_assignments, settings.topic_models]
        )
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
