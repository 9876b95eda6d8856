"""Benchmarks for the modelling core; prints the numbers the issue asks for.

    .venv/bin/python bench/bench_models.py [--crm-rows 100000] [--seed 1] [--random-worlds 3]

1. µs per event for feature update + scoring (``PersonaMapper.observe``), median and p99
   of 3 runs, on interleaved simulated traffic with one state per visitor: rules only,
   trained (warm likelihood cache, as in a scoring worker) and with the cache cleared
   before every event (worst case); µs per label learned; the per-visitor state's size.
2. For world A (sessions) and world B (Markov page transitions) of ``models.worlds``:
   log loss / accuracy / ECE of the model, the oracle (exact Bayes posterior) and the
   uniform guess on 1,000 held-out visitors after 0, 100, 500 and 2,000 labels, the ratio
   to the oracle, and the events needed to reach 90% top-1 -- twice: from labelled visitors
   alone, and with the same labels inside traffic where 1 visitor in 10 is labelled and the
   unlabelled ones teach too (online EM, as the engine does by default); then the ratio and
   ECE after 2,000 labels on ``--random-worlds`` random catalogs, both worlds, both ways.
3. snapshot size and snapshot/restore time.
4. discovery: one persona hidden from the catalog, precision and share of the top candidate.
5. ``map-crm`` rows per second (streaming CSV in, CSV out) and peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import math
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.catalog import Catalog
from models.evaluation import evaluate, replay, train
from models.mapper import PersonaMapper
from models.simulator import Simulator
from models.worlds import World, random_catalog
from stream_app.batch.map_crm import map_csv
from stream_app.settings import Settings

DEFAULT_UNLABELLED_WEIGHT = Settings.model_fields["unlabelled_weight"].default
DEFAULT_MIN_LABELS = Settings.model_fields["unlabelled_min_labels"].default
TRAFFIC_LABELLED = 0.1  # the traffic mode: 1 visitor in 10 labelled
DISCOVERY_LABELS = 2000

CATALOG = Path(__file__).resolve().parents[1] / "models" / "catalogs" / "b2b_saas.yaml"
QUALITY_STEPS = [0, 100, 500, 2000]


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
            mapper.model.clear_cache()
        t = clock()
        state, _ = mapper.observe(state, event)
        out.append((clock() - t) / 1000)
        states[event["visitor_id"]] = state
    return out


def interleave(visitors: list[Any], seed: int, concurrency: int = 50) -> list[dict[str, Any]]:
    """Visitors' events interleaved like live traffic, each visitor's in order."""
    rng = random.Random(seed)
    queue = [list(reversed(v.events)) for v in visitors]
    active: list[list[dict[str, Any]]] = []
    out = []
    while queue or active:
        while queue and len(active) < concurrency:
            active.append(queue.pop())
        i = rng.randrange(len(active))
        out.append(active[i].pop())
        if not active[i]:
            active.pop(i)
    return out


def bench_latency(catalog: Catalog, seed: int) -> None:
    mapper = PersonaMapper(catalog)
    train(mapper, World(catalog, seed=seed, kind="markov").visitors(2000))
    traffic = list(World(catalog, seed=seed + 1, kind="markov", labelled_fraction=0).visitors(3000))
    events = interleave(traffic, seed)
    time_observe(mapper, events[:5000], cold=False)  # warm-up (UA parser cache, imports)
    print(f"## observe: feature update + scoring, µs per event (load average {load()})")
    print(f"{'case':<46}{'events':>8}{'median':>9}{'p99':>9}   (3 runs)")
    for name, m, cold in [
        ("rules only (0 labels)", PersonaMapper(catalog), False),
        ("trained (2,000 labels), warm cache", mapper, False),
        ("trained (2,000 labels), cache cleared (worst)", mapper, True),
    ]:
        runs = [time_observe(m, events, cold) for _ in range(3)]
        medians = " / ".join(f"{statistics.median(t):.1f}" for t in runs)
        p99s = " / ".join(f"{pct(t, 0.99):.0f}" for t in runs)
        print(f"{name:<46}{len(runs[0]):>8}  median {medians}  p99 {p99s}")
    learner = PersonaMapper(catalog)
    labelled = list(World(catalog, seed=seed + 2, kind="markov").visitors(1000))
    states = [(replay(learner, v.events), v.persona) for v in labelled]
    times = []
    for state, persona in states:
        t = time.perf_counter_ns()
        learner.learn(state, persona)
        times.append((time.perf_counter_ns() - t) / 1000)
    print(
        f"{'learn (one label)':<46}{len(times):>8}  median {statistics.median(times):.1f}"
        f"  p99 {pct(times, 0.99):.0f}"
    )
    soft_times = []
    for v in traffic[:1000]:
        soft_state = learner.new_state()
        for event in v.events:
            soft_state, _ = learner.observe(soft_state, event)
            soft_state, example = learner.soft_example(soft_state, 1.0, 50)
            if example is not None:
                t = time.perf_counter_ns()
                learner.learn_soft(example)
                soft_times.append((time.perf_counter_ns() - t) / 1000)
    print(
        f"{'learn_soft (one unlabelled example)':<46}{len(soft_times):>8}  median "
        f"{statistics.median(soft_times):.1f}  p99 {pct(soft_times, 0.99):.0f}"
    )
    sizes: dict[int, list[int]] = {10: [], 50: []}
    states_by_id: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "label":
            continue
        state = states_by_id.get(event["visitor_id"]) or mapper.new_state()
        state, _ = mapper.observe(state, event)
        states_by_id[event["visitor_id"]] = state
        if state["n"] in sizes:
            sizes[state["n"]].append(len(orjson.dumps(state)))
    for n, found in sizes.items():
        if found:
            print(
                f"per-visitor model state after {n} events (orjson bytes, {len(found)} visitors): "
                f"median {statistics.median(found):.0f}, p90 {pct(found, 0.9)}, max {max(found)}"
            )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def top_per_prefix(mapper: PersonaMapper, events: list[dict[str, Any]]) -> list[str]:
    state, tops = mapper.new_state(), []
    for e in events:
        if e["type"] == "label":
            continue
        state, out = mapper.observe(state, e)
        tops.append(out["top"]["persona"])
    return tops


def events_to_accuracy(tops: list[tuple[list[str], str]], target: float = 0.9) -> str:
    """Fewest events after which top-1 accuracy (visitors with at least that many) >= target."""
    for n in range(1, 41):
        hits = [t[n - 1] == truth for t, truth in tops if len(t) >= n]
        if len(hits) < 30:
            break
        if sum(hits) / len(hits) >= target:
            return str(n)
    return "never"


def bench_world(
    catalog: Catalog,
    kind: str,
    seed: int,
    held_out: int = 1000,
    labelled_fraction: float = 1.0,
) -> dict[str, Any]:
    """Model vs oracle vs uniform after 0, 100, 500 and 2,000 labels, on a fresh world.

    ``labelled_fraction`` 1: labelled visitors only, the model learns from labels alone.
    Below 1: the labels arrive inside traffic where that share of visitors is labelled, and
    the unlabelled ones teach too (online EM, the engine's default ``PERSONA_UNLABELLED_*``).
    """
    world = World(catalog, seed=seed, kind=kind)
    test = list(world.visitors(held_out))
    world.labelled_fraction = labelled_fraction
    weight = 0.0 if labelled_fraction >= 1.0 else DEFAULT_UNLABELLED_WEIGHT
    personas = catalog.persona_ids
    k = len(personas)
    oracle = evaluate(((v.oracle, v.persona) for v in test), personas)
    mapper = PersonaMapper(catalog)
    visitors = 0
    print(
        f"{'labels':>7} | {'log loss':>8}{'acc':>7}{'ECE':>7}{'ratio':>7} | "
        f"{'oracle':>8}{'acc':>7}{'ECE':>7} | {'uniform':>8}{'acc':>7}"
    )
    seen, last = 0, {}
    for target in QUALITY_STEPS:
        while seen < target:
            batch = target - seen
            if labelled_fraction < 1.0:  # about half the labels still missing, then fewer
                batch = max(1, int(batch * 0.5 / labelled_fraction))
            seen += train(mapper, world.visitors(batch), weight, DEFAULT_MIN_LABELS)
            visitors += batch
        r = evaluate(((mapper.score(replay(mapper, v.events)), v.persona) for v in test), personas)
        ratio = r["log_loss"] / oracle["log_loss"]
        print(
            f"{seen:>7} | {r['log_loss']:>8.3f}{r['accuracy']:>7.3f}{r['ece']:>7.3f}"
            f"{ratio:>7.3f} | "
            f"{oracle['log_loss']:>8.3f}{oracle['accuracy']:>7.3f}{oracle['ece']:>7.3f} | "
            f"{math.log(k):>8.3f}{1 / k:>7.3f}"
        )
        last = {
            "visitors": visitors,
            "ratio": ratio,
            "ece": r["ece"],
            "log_loss": r["log_loss"],
            "oracle_ece": oracle["ece"],
        }
    model_tops = [(top_per_prefix(mapper, v.events), v.persona) for v in test]
    oracle_tops = [(v.oracle_top, v.persona) for v in test]
    m = mapper.metrics()
    if labelled_fraction < 1.0:
        print(f"(labels within {visitors:,} training visitors; unlabelled weight {weight})")
    print(
        f"events to reach 90% top-1 (after {seen} labels): model {events_to_accuracy(model_tops)}, "
        f"oracle {events_to_accuracy(oracle_tops)}; events per visitor "
        f"{statistics.mean(len(t) for t, _ in oracle_tops):.1f}"
    )
    print(
        f"learned: prior strengths {m['prior_strengths']}, page backoff {m['page_backoff']}, "
        f"temperature {m['temperature']}"
    )
    return {**last, "mapper": mapper}


def bench_quality(catalog: Catalog, seed: int, random_worlds: int) -> PersonaMapper:
    mapper = None
    for kind, title in (
        ("sessions", "A (sessions, naive-Bayes world)"),
        ("markov", "B (Markov page transitions)"),
    ):
        print(
            f"\n## world {title}, catalog {catalog.name}, 1,000 held-out visitors (load {load()})"
        )
        print("### labelled visitors only: the model learns from labels alone")
        out = bench_world(catalog, kind, seed + 3)
        mapper = mapper or out["mapper"]
        print(
            f"### the same labels inside traffic where 1 visitor in {round(1 / TRAFFIC_LABELLED)} "
            "is labelled: unlabelled visitors teach too (online EM, the engine's default)"
        )
        bench_world(catalog, kind, seed + 3, labelled_fraction=TRAFFIC_LABELLED)
    if random_worlds:
        print(
            f"\n## {random_worlds} random catalogs x both worlds (4-6 personas, 8-16 page "
            "categories, 30% of the rules pointing at a wrong persona): after 2,000 labels, "
            f"labels only and within traffic (1 in {round(1 / TRAFFIC_LABELLED)} labelled)"
        )
        print(
            "(ECE of the oracle, calibrated by construction, on the same 600 visitors: the "
            "10-bin ECE's sampling noise)"
        )
        print(
            f"{'catalog':>10}{'world':>10}{'personas':>9} | {'ratio':>7}{'ECE':>7} | "
            f"{'ratio':>7}{'ECE':>7} | {'oracle ECE':>10}"
        )
        for i in range(random_worlds):
            rng = random.Random(seed * 1000 + i)
            cat = random_catalog(
                seed * 1000 + i, n_personas=rng.randint(4, 6), n_pages=rng.randint(8, 16)
            )
            for kind in ("sessions", "markov"):
                with contextlib.redirect_stdout(io.StringIO()):
                    r = bench_world(cat, kind, seed + 7 + i, held_out=600)
                    t = bench_world(
                        cat, kind, seed + 7 + i, held_out=600, labelled_fraction=TRAFFIC_LABELLED
                    )
                print(
                    f"{cat.name:>10}{kind:>10}{len(cat.personas):>9} | {r['ratio']:>7.3f}"
                    f"{r['ece']:>7.3f} | {t['ratio']:>7.3f}{t['ece']:>7.3f} | "
                    f"{r['oracle_ece']:>10.3f}"
                )
    assert mapper is not None
    return mapper


def bench_snapshot(mapper: PersonaMapper, catalog: Catalog) -> None:
    t = time.perf_counter()
    data = mapper.snapshot()
    t_dump = time.perf_counter() - t
    t = time.perf_counter()
    PersonaMapper.from_snapshot(data, catalog)
    t_load = time.perf_counter() - t
    model_json = len(json.dumps(mapper.model.to_dict()))
    print(
        f"\n## snapshot after {mapper.n_labels} labels: {len(data):,} bytes "
        f"(token counts and parameters as raw JSON {model_json:,} bytes); "
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


def bench_discovery(catalog: Catalog, seed: int, random_worlds: int) -> None:
    for labels in (0, DISCOVERY_LABELS):
        what = (
            f"{labels:,} labels of the known personas (the trained model ranks by fit)"
            if labels
            else "the rules alone (no labels)"
        )
        print(f"\n# discovery with {what}")
        for i, hidden in enumerate(catalog.persona_ids[::-1]):
            bench_discovery_one(catalog, seed, hidden, table=i == 0, labels=labels)
        for hidden in [None] if labels else []:
            bench_discovery_one(catalog, seed, hidden, table=False, labels=labels)
    if random_worlds:
        print(
            f"\n# discovery on {random_worlds} random catalogs, persona_0 or persona_1 hidden, "
            f"then none; the model trained on {DISCOVERY_LABELS:,} labels of the known personas"
        )
    for i in range(random_worlds):
        cat_seed = seed * 2000 + i
        rng = random.Random(cat_seed)
        cat = random_catalog(cat_seed, n_personas=rng.randint(4, 6), n_pages=rng.randint(8, 16))
        for hidden in [*cat.persona_ids[:2], None]:
            bench_discovery_one(cat, cat_seed, hidden, table=False, labels=DISCOVERY_LABELS)


def bench_discovery_one(
    catalog: Catalog, seed: int, hidden: str | None, table: bool, labels: int = 0
) -> None:
    """Hide one persona from the catalog: is the top candidate cluster made of it?
    ``hidden`` None: the control, nothing hidden (no candidate is the right answer).
    ``labels``: the mapper first learns that many labels of the known personas."""
    from models.discovery import PersonaDiscovery

    doc = catalog.model_dump(mode="json", exclude_none=True)
    doc["personas"] = [p for p in doc["personas"] if p["id"] != hidden]
    doc["linking_rules"] = [r for r in doc["linking_rules"] if r["persona"] != hidden]
    small = Catalog.from_dict(doc)
    for kind in ("sessions", "markov"):
        mapper = PersonaMapper(small)
        world = World(catalog, seed=seed + 5, kind=kind, labelled_fraction=1.0 if labels else 0.0)
        if labels:
            known = (v for v in world.visitors(labels * 2) if v.persona != hidden)
            train(mapper, itertools.islice(known, labels))
            world.labelled_fraction = 0.0
        disc = PersonaDiscovery(mapper=mapper)
        members: dict[int, dict[str, int]] = {}
        t = time.perf_counter()
        n = hidden_total = 0
        for v in world.visitors(4000):
            c = disc.learn_one(replay(mapper, v.events))
            if c >= 0:
                n += 1
                hidden_total += v.persona == hidden
                members.setdefault(c, {}).setdefault(v.persona, 0)
                members[c][v.persona] += 1
        elapsed = time.perf_counter() - t
        candidates = disc.candidates()

        def hidden_in(
            candidate: dict[str, Any], members: dict[int, dict[str, int]] = members
        ) -> int:
            return sum(members[c].get(hidden, 0) for c in candidate["clusters"])

        if hidden is None:
            print(
                f"discovery, {catalog.name}, world {kind}, nothing hidden (control): "
                f"{len(candidates)} candidates"
            )
            continue
        if not table:
            if candidates:
                got = hidden_in(candidates[0])
                print(
                    f"discovery, {catalog.name}, world {kind}, {hidden!r} hidden: "
                    "top candidate precision "
                    f"{got / candidates[0]['size']:.2f}, share {got / max(hidden_total, 1):.2f} "
                    f"(clusters {candidates[0]['clusters']}); {len(candidates)} candidates"
                )
            else:
                print(
                    f"discovery, {catalog.name}, world {kind}, {hidden!r} hidden: "
                    "no candidate flagged"
                )
            continue
        print(
            f"\n## discovery, world {kind}, {hidden!r} hidden from the catalog ({n} visitors "
            f"with >= 5 events, {hidden_total / max(n, 1):.0%} of them {hidden}; "
            f"{elapsed / max(n, 1) * 1e6:.0f} µs per visitor incl. replay)"
        )
        print(
            f"{'cluster':>7}{'size':>6}{'closest':>20}{'p':>6}{'uncov':>6}  {'precision':>9}"
            f"{'share':>7}  candidate  top features"
        )
        rank = {i: n + 1 for n, c in enumerate(candidates) for i in c["clusters"]}
        for c in disc.summary(3):
            got = members[c["cluster"]].get(hidden, 0)
            feats = ", ".join(f["feature"] for f in c["distinguishing"])
            print(
                f"{c['cluster']:>7}{c['size']:>6}{c['closest_persona']:>20}"
                f"{c['closest_persona_mean_probability']:>6.2f}{c['uncovered_share']:>6.2f}"
                f"  {got / c['size']:>9.2f}{got / max(hidden_total, 1):>7.2f}"
                f"  {('#' + str(rank[c['cluster']])) if c['cluster'] in rank else '':>9}  {feats}"
            )
        if candidates:
            got = hidden_in(candidates[0])
            print(
                f"top candidate: clusters {candidates[0]['clusters']}, precision "
                f"{got / candidates[0]['size']:.2f} (share of its members that are {hidden}), "
                f"share {got / max(hidden_total, 1):.2f} (of all {hidden} visitors); "
                f"{len(candidates)} candidates"
            )
        else:
            print("no candidate flagged")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crm-rows", type=int, default=100_000)
    parser.add_argument("--random-worlds", type=int, default=3)
    args = parser.parse_args()
    catalog = Catalog.load(CATALOG)
    print(
        f"python {sys.version.split()[0]}, catalog {catalog.name}: "
        f"{len(catalog.persona_ids)} personas\n"
    )
    bench_latency(catalog, args.seed)
    mapper = bench_quality(catalog, args.seed, args.random_worlds)
    bench_snapshot(mapper, catalog)
    bench_discovery(catalog, args.seed, args.random_worlds)
    bench_crm(catalog, args.crm_rows, args.seed)


if __name__ == "__main__":
    main()
