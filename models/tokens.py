"""Evidence tokens: what an event tells about its visitor, counted at the level where it varies.

A token is a short string: one character naming its *slot*, then the value. The mapper
turns each event into tokens, with the visitor's session context (is this the first event
of a session, which page came before):

| slot | level | value |
|---|---|---|
| ``u`` | visitor (once) | device/os/browser of the user agent |
| ``g`` | visitor (once) | country |
| ``h`` | session start | hour of day (0-23, in the event's own offset) |
| ``w`` | session start | weekday (0) / weekend (1) |
| ``c`` | landing page | marketing channel (UTM / referrer; internal pages carry none) |
| ``p`` | page view | previous page of the session (``^`` at its start) → page category |
| ``d`` | page view | dwell time, one of 17 log-spaced bins (10 s and 60 s are bin edges) |
| ``t`` | touchpoint | ``channel:action`` (two codes) |
| ``f`` | feedback | kind and score |
| ``y`` | every event after a session's first | event type |

Page categories, hours, channels, dwell bins and touchpoints are coded with one character
each (``CODES``), so a visitor's token counts stay small enough for the engine's
per-visitor budget.
"""

from __future__ import annotations

import math
import string
from bisect import bisect_right
from typing import Any

from models.catalog import TOUCH_ACTIONS, TOUCH_CHANNELS

CODES = string.digits + string.ascii_letters  # 62 one-character codes
START = "^"  # "previous page" at the start of a session
DWELL_EDGES_S = (1, 2, 3.5, 6, 10, 15, 22, 32, 45, 60, 90, 140, 220, 360, 600, 1200)
DWELL_BINS = len(DWELL_EDGES_S) + 1
_EDGES_MS = [e * 1000.0 for e in DWELL_EDGES_S]
SLOTS = "ughwcpdtfy"
VISITOR_SLOTS = frozenset("ug")
TYPE_CODES = {"page_view": "p", "touchpoint": "t", "feedback": "f", "identify": "i"}
FEEDBACK_CODES = {"nps": "n", "csat": "s", "ces": "e"}


def code(i: int) -> str:
    """One character for i < 62, else ``_i_`` (catalogs with very many page categories)."""
    return CODES[i] if i < len(CODES) else f"_{i}_"


def split_codes(text: str) -> list[int]:
    """Inverse of concatenated :func:`code` values (``START`` is -1)."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "_":
            j = text.index("_", i + 1)
            out.append(int(text[i + 1 : j]))
            i = j + 1
        else:
            out.append(-1 if ch == START else CODES.index(ch))
            i += 1
    return out


def touch_name(value: str) -> str:
    """``channel:action`` of a two-character touchpoint code."""
    if len(value) != 2 or value[0] not in CODES or value[1] not in CODES:
        return "other:other"
    i, j = CODES.index(value[0]), CODES.index(value[1])
    if i >= len(TOUCH_CHANNELS) or j >= len(TOUCH_ACTIONS):
        return "other:other"
    return f"{TOUCH_CHANNELS[i]}:{TOUCH_ACTIONS[j]}"


def dwell_bin(dwell_ms: int) -> int:
    """The bin of a dwell time: how many edges it reaches (``bisect`` on milliseconds)."""
    return bisect_right(_EDGES_MS, dwell_ms)


DWELL_TOKENS = tuple("d" + code(b) for b in range(DWELL_BINS))


def dwell_bucket_of_bin(b: int) -> str:
    """The catalog's dwell bucket (short < 10 s <= medium < 60 s <= long) of a bin."""
    upper = DWELL_EDGES_S[b] if b < len(DWELL_EDGES_S) else math.inf
    return "short" if upper <= 10 else "medium" if upper <= 60 else "long"


def hour_of(ts: Any) -> int | None:
    """Local hour of an RFC 3339 time as written (its own offset), without parsing it all."""
    if isinstance(ts, str) and len(ts) >= 13 and ts[10] in "Tt " and ts[11:13].isdigit():
        h = int(ts[11:13])
        return h if h < 24 else None
    return None
