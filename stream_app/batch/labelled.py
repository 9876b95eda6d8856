"""Read a labelled sample: native events (JSONL) grouped by visitor, truth from labels."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from models.catalog import Catalog


@dataclass
class LabelledVisitor:
    visitor_id: str
    persona: str
    events: list[dict[str, Any]] = field(default_factory=list)


def load_labelled(path: str, catalog: Catalog) -> tuple[list[LabelledVisitor], list[str]]:
    """Visitors that carry a label (their label event last) and the problems found, located."""
    known = set(catalog.persona_ids)
    events: dict[str, list[dict[str, Any]]] = {}
    labels: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as exc:
                problems.append(f"{path}:{n}: not JSON: {exc}")
                continue
            vid = event.get("visitor_id") if isinstance(event, dict) else None
            if not isinstance(vid, str) or not isinstance(event.get("ts"), str):
                problems.append(f"{path}:{n}: not a native event (visitor_id and ts needed)")
                continue
            if event.get("type") == "label":
                if event.get("persona") not in known:
                    problems.append(
                        f"{path}:{n}: label names unknown persona {event.get('persona')!r}"
                    )
                    continue
                labels[vid] = event
            else:
                events.setdefault(vid, []).append(event)
    visitors = [
        LabelledVisitor(vid, label["persona"], [*events.get(vid, []), label])
        for vid, label in labels.items()
    ]
    return visitors, problems
