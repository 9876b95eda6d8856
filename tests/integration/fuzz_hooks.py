"""schemathesis hooks for tests/integration/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

One rule of the API cannot be written in JSON Schema: an event's timestamp must be a real
date at most 24 hours ahead of the server's clock (the schema states it in prose and gives
the RFC 3339 pattern). Schema-valid (positive) cases therefore get the current time in every
``ts`` / ``timestamp`` that has the documented shape; negative cases are sent as generated.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import schemathesis

from stream_app.events.schema import TS_PATTERN

TS = re.compile(TS_PATTERN)
TS_FIELDS = frozenset({"ts", "timestamp"})


def fresh(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                datetime.now(UTC).isoformat()
                if k in TS_FIELDS and isinstance(v, str) and TS.search(v)
                else fresh(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [fresh(v) for v in node]
    return node


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive and case.body is not None:
        case.body = fresh(case.body)
