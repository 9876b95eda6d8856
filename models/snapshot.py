"""Model snapshots as data, not code: zlib-compressed JSON with a magic prefix.

A snapshot holds the learned part of a :class:`~models.mapper.PersonaMapper`: the token
counts per persona, the temperature, the label weights and the progressive-validation
counters. It is plain JSON, so loading a snapshot can never
run code (unlike pickle), whoever wrote it to the models topic. ADWIN drift detectors are
not carried over: a restored mapper starts its drift windows afresh.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

MAGIC = b"PSMODEL1"
MAX_JSON_BYTES = 64 * 1024 * 1024


class SnapshotError(ValueError):
    """Bytes that are not a valid persona model snapshot."""


def encode(doc: dict[str, Any]) -> bytes:
    raw = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    return MAGIC + zlib.compress(raw, 6)


def decode(data: bytes) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray) or not data.startswith(MAGIC):
        raise SnapshotError("not a persona model snapshot (bad magic)")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data[len(MAGIC) :], MAX_JSON_BYTES)
    except zlib.error as exc:
        raise SnapshotError(f"corrupt persona model snapshot: {exc}") from None
    if inflater.unconsumed_tail:
        raise SnapshotError("persona model snapshot too large")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise SnapshotError(f"corrupt persona model snapshot: {exc}") from None
    if not isinstance(doc, dict):
        raise SnapshotError("persona model snapshot is not an object")
    return doc
