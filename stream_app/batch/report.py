"""Validation report over a labelled sample: rules only vs trained, on held-out visitors."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from models.catalog import Catalog
from models.evaluation import evaluate, replay, train
from models.mapper import PersonaMapper
from stream_app.batch.labelled import LabelledVisitor


def _held_out(visitor_id: str, share: float) -> bool:
    digest = hashlib.sha256(visitor_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def validation_report(
    catalog: Catalog, visitors: list[LabelledVisitor], holdout: float, half_life_s: float
) -> dict[str, Any]:
    test = [v for v in visitors if _held_out(v.visitor_id, holdout)]
    learn = [v for v in visitors if not _held_out(v.visitor_id, holdout)]
    if not test:
        test, learn = learn[-1:], learn[:-1]
    personas = catalog.persona_ids
    rules = PersonaMapper(catalog, half_life_s=half_life_s)
    trained = PersonaMapper(catalog, half_life_s=half_life_s)
    train(trained, learn)

    def scored(mapper: PersonaMapper) -> dict[str, Any]:
        return evaluate(
            ((mapper.score(replay(mapper, v.events)), v.persona) for v in test), personas
        )

    return {
        "labelled_visitors": len(visitors),
        "trained_on": len(learn),
        "held_out": len(test),
        "uniform": {"accuracy": 1 / len(personas), "log_loss": math.log(len(personas))},
        "rules_only": scored(rules),
        "trained": scored(trained),
    }


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render_validation(report: dict[str, Any]) -> str:
    lines = [
        f"labelled visitors: {report['labelled_visitors']} "
        f"(trained on {report['trained_on']}, held out {report['held_out']})",
        "",
        f"{'model':<12}{'accuracy':>10}{'log loss':>10}{'ECE':>8}",
        f"{'uniform':<12}{_fmt(report['uniform']['accuracy']):>10}"
        f"{_fmt(report['uniform']['log_loss']):>10}{'-':>8}",
    ]
    for name in ("rules_only", "trained"):
        r = report[name]
        lines.append(
            f"{name:<12}{_fmt(r['accuracy']):>10}{_fmt(r['log_loss']):>10}{_fmt(r['ece']):>8}"
        )
    r = report["trained"]
    personas = list(r["per_persona"])
    width = max(len(p) for p in personas) + 2
    lines += [
        "",
        "trained model, per persona:",
        f"{'persona':<{width}}{'precision':>10}{'recall':>8}{'n':>6}",
    ]
    for p, m in r["per_persona"].items():
        lines.append(
            f"{p:<{width}}{_fmt(m['precision']):>10}{_fmt(m['recall']):>8}{m['support']:>6}"
        )
    lines += ["", "confusion (rows: truth, columns: predicted):"]
    short = [p[:8] for p in personas]
    lines.append(" " * width + "".join(f"{s:>10}" for s in short))
    for t in personas:
        lines.append(f"{t:<{width}}" + "".join(f"{r['confusion'][t][p]:>10}" for p in personas))
    lines += ["", "calibration (top-1 confidence vs accuracy):"]
    for b in r["calibration"]:
        lines.append(
            f"  {b['bin']}: n={b['n']:<6} "
            f"confidence={b['confidence']:.3f} accuracy={b['accuracy']:.3f}"
        )
    lines += ["", "separation (row persona's mean probability: own visitors minus column's):"]
    lines.append(" " * width + "".join(f"{s:>10}" for s in short))
    for a in personas:
        row = r["separation"].get(a, {})
        lines.append(f"{a:<{width}}" + "".join(f"{_fmt(row.get(b)):>10}" for b in personas))
    return "\n".join(lines)
