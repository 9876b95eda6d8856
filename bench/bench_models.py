"""Benchmarks for the modelling core; prints the numbers the issue asks for.

    .venv/bin/python bench/bench_models.py [--crm-rows 100000] [--seed 1]

1. µs per event for feature update + scoring (``PersonaMapper.observe``), median and p99,
   on interleaved simulated traffic with one state per visitor: with a trained model
   (warm evidence cache, as in a scoring worker) and with the cache cleared before every
   event (worst case: every event a new feature combination); plus µs per label learned.
2. accuracy / log loss / ECE on 1,000 held-out simulated visitors against labels seen.
3. snapshot size and snapshot/restore time.
4. ``map-crm`` rows per second (streaming CSV in, CSV out) and peak RSS.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.catalog import Catalog
from models.evaluation import evaluate, replay, train
from models.mapper import PersonaMapper
from models.simulator import Simulator
from stream_app.batch.map_crm import map_csv

CATALOG = Path(__file__).resolve().parents[1] / "models" / "catalogs" / "b2b_saas.yaml"
LABEL_STEPS = [0, 50, 100, 200, 500, 1000, 2000, 5000]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_observe(mapper: PersonaMapper, events: list[dict[str, Any]], cold: bool) -> list[float]:
    states: dict[str, dict[str, Any]] = {}
    out: list[float] = []
    clock = time.perf_counter_ns
    for event in events:
        if event["type"] == "label":
            continue
        state = states.get(event["visitor_id"]) or mapper.new_state()
        if cold:
            mapper.evidence._cache.clear()
        t = clock()
        state, _ = mapper.observe(state, event)
        out.append((clock() - t) / 1000)
        states[event["visitor_id"]] = state
    return out


def bench_latency(catalog: Catalog, seed: int) -> None:
    mapper = PersonaMapper(catalog)
    train(mapper, Simulator(catalog, seed=seed, labelled_fraction=1.0).visitors(500))
    events = list(Simulator(catalog, seed=seed + 1, labelled_fraction=0.0).stream(4000))
    time_observe(mapper, events[:5000], cold=False)  # warm-up (UA parser cache, imports)
    print("## observe: feature update + scoring, µs per event")
    print(f"{'case':<44}{'events':>8}{'median':>9}{'p99':>9}")
    for name, m, cold in [
        ("rules only (0 labels)", PersonaMapper(catalog), False),
        ("trained (500 labels), warm evidence cache", mapper, False),
        ("trained (500 labels), cache cleared (worst)", mapper, True),
    ]:
        times = time_observe(m, events, cold)
        print(f"{name:<44}{len(times):>8}{statistics.median(times):>9.1f}{pct(times, 0.99):>9.1f}")
    learner = PersonaMapper(catalog)
    labelled = list(Simulator(catalog, seed=seed + 2, labelled_fraction=1.0).visitors(1000))
    states = [(replay(learner, v.events), v.persona) for v in labelled]
    times = []
    for state, persona in states:
        t = time.perf_counter_ns()
        learner.learn(state, persona)
        times.append((time.perf_counter_ns() - t) / 1000)
    print(
        f"{'learn (one label, its recent events)':<44}{len(times):>8}"
        f"{statistics.median(times):>9.1f}{pct(times, 0.99):>9.1f}"
    )


def bench_learning(catalog: Catalog, seed: int) -> PersonaMapper:
    world = Simulator(catalog, seed=seed + 3, labelled_fraction=1.0)
    held_out = list(world.visitors(1000))
    mapper = PersonaMapper(catalog)
    k = len(catalog.persona_ids)
    print("\n## held-out quality vs labels (1,000 simulated visitors)")
    print(f"{'labels':>7}{'accuracy':>10}{'log loss':>10}{'ECE':>8}")
    print(f"{'uniform':>7}{1 / k:>10.3f}{math.log(k):>10.3f}{0.0:>8.3f}")
    seen = 0
    for target in LABEL_STEPS:
        seen += train(mapper, world.visitors(target - seen))
        preds = ((mapper.score(replay(mapper, v.events)), v.persona) for v in held_out)
        r = evaluate(preds, catalog.persona_ids)
        print(f"{seen:>7}{r['accuracy']:>10.3f}{r['log_loss']:>10.3f}{r['ece']:>8.3f}")
    m = mapper.metrics()
    print(
        f"progressive validation over the {m['labels_seen']} labels: accuracy "
        f"{m['accuracy']:.3f}, log loss {m['log_loss']:.3f}, ECE {m['ece']:.3f}, "
        f"log-loss drifts {m['log_loss_drifts']}, persona-mix drifts {m['persona_mix_drifts']}"
    )
    return mapper


def bench_snapshot(mapper: PersonaMapper, catalog: Catalog) -> None:
    t = time.perf_counter()
    data = mapper.snapshot()
    t_dump = time.perf_counter() - t
    t = time.perf_counter()
    PersonaMapper.from_snapshot(data, catalog)
    t_load = time.perf_counter() - t
    model_json = len(json.dumps(mapper.evidence.to_dict()["model"]))
    print(
        f"\n## snapshot after {mapper.n_labels} labels: {len(data):,} bytes "
        f"(river weights + AdaGrad state as raw JSON {model_json:,} bytes); "
        f"snapshot {t_dump * 1000:.1f} ms, "
        f"restore {t_load * 1000:.1f} ms"
    )


def crm_rows(catalog: Catalog, n: int, seed: int, path: Path) -> None:
    sim = Simulator(catalog, seed=seed + 4, labelled_fraction=0.0)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "id",
                "user_agent",
                "country",
                "landing_url",
                "referrer",
                "pages",
                "touchpoints",
                "last_seen",
            ]
        )
        template = list(sim.visitors(2000))
        for i in range(n):
            v = template[i % len(template)]
            pages = [e for e in v.events if e["type"] == "page_view"]
            touches = [
                f"{e['channel']}:{e['action']}" for e in v.events if e["type"] == "touchpoint"
            ]
            first = pages[0] if pages else {}
            ctx = v.events[0].get("context", {})
            w.writerow(
                [
                    f"c{i}",
                    ctx.get("user_agent", ""),
                    ctx.get("country", ""),
                    first.get("url", ""),
                    first.get("referrer", ""),
                    ";".join(e["url"].split("example", 1)[-1] for e in pages[1:]),
                    ";".join(touches),
                    v.events[-1]["ts"],
                ]
            )
            if i % 1000 == 999:
                w.writerow([f"bad{i}", "", "", "", "", "", "pigeon:post", ""])


def bench_crm(catalog: Catalog, rows: int, seed: int) -> None:
    mapper = PersonaMapper(catalog)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "customers.csv", Path(tmp) / "assignments.csv"
        crm_rows(catalog, rows, seed, src)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(Path(tmp) / "errors.txt", "w") as errors:
            stats = map_csv(mapper, str(src), str(dst), progress=None, errors=errors)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            f"\n## map-crm: {stats.mapped:,} rows mapped, {stats.skipped:,} bad rows skipped "
            f"in {stats.seconds:.2f}s = {stats.rows_per_s:,.0f} rows/s; peak RSS "
            f"{rss_before / 1024:.0f} MiB before, {rss_after / 1024:.0f} MiB after"
        )


def bench_discovery(catalog: Catalog, seed: int, hidden: str = "loyal_customer") -> None:
    """Hide one persona from the catalog; does discovery flag a cluster made of it?"""
    import yaml

    from models.discovery import PersonaDiscovery

    doc = yaml.safe_load(CATALOG.read_text())
    doc["personas"] = [p for p in doc["personas"] if p["id"] != hidden]
    doc["linking_rules"] = [r for r in doc["linking_rules"] if r["persona"] != hidden]
    small = Catalog.from_dict(doc)
    mapper = PersonaMapper(small)
    disc = PersonaDiscovery(mapper=mapper)
    members: dict[int, dict[str, int]] = {}
    t = time.perf_counter()
    n = 0
    for v in Simulator(catalog, seed=seed + 5, labelled_fraction=0.0).visitors(4000):
        c = disc.learn_one(replay(mapper, v.events))
        n += c >= 0
        if c >= 0:
            members.setdefault(c, {}).setdefault(v.persona, 0)
            members[c][v.persona] += 1
    elapsed = time.perf_counter() - t
    print(
        f"\n## discovery with {hidden!r} hidden from the catalog ({n} visitors with >= 5 events, "
        f"{elapsed / max(n, 1) * 1e6:.0f} µs per visitor incl. replay)"
    )
    print(
        f"{'cluster':>7}{'size':>6}{'closest':>20}{'p':>6}{'uncov':>6}  {'hidden share':>12}  "
        "candidate  top features"
    )
    flagged = {c["cluster"] for c in disc.candidates()}
    for c in disc.summary(3):
        share = members[c["cluster"]].get(hidden, 0) / c["size"]
        feats = ", ".join(f["feature"] for f in c["distinguishing"])
        print(
            f"{c['cluster']:>7}{c['size']:>6}{c['closest_persona']:>20}"
            f"{c['closest_persona_mean_probability']:>6.2f}{c['uncovered_share']:>6.2f}"
            f"  {share:>12.2f}  "
            f"{'yes' if c['cluster'] in flagged else '':>9}  {feats}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crm-rows", type=int, default=100_000)
    args = parser.parse_args()
    catalog = Catalog.load(CATALOG)
    print(
        f"python {sys.version.split()[0]}, catalog {catalog.name}: "
        f"{len(catalog.persona_ids)} personas\n"
    )
    bench_latency(catalog, args.seed)
    mapper = bench_learning(catalog, args.seed)
    bench_snapshot(mapper, catalog)
    bench_discovery(catalog, args.seed)
    bench_crm(catalog, args.crm_rows, args.seed)


if __name__ == "__main__":
    main()
