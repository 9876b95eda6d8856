"""Model snapshots as data, not code: zlib-compressed JSON with a magic prefix.

A snapshot holds the learned part of a :class:`~models.mapper.PersonaMapper`: the river
``SoftmaxRegression`` weights and its per-class ``AdaGrad`` state, the label counts and
the progressive-validation counters. It is plain JSON, so loading a snapshot can never
run code (unlike pickle), whoever wrote it to the models topic. ADWIN drift detectors are
not carried over: a restored mapper starts its drift windows afresh.
"""

from __future__ import annotations

import collections
import json
import math
import zlib
from typing import Any

from river import linear_model, optim

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


def _floats(d: Any, what: str) -> dict[str, float]:
    if not isinstance(d, dict):
        raise SnapshotError(f"{what} must be an object")
    out = {}
    for k, v in d.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise SnapshotError(f"{what}[{k!r}] must be a finite number")
        out[str(k)] = float(v)
    return out


def dump_softmax(model: linear_model.SoftmaxRegression) -> dict[str, Any]:
    return {
        "weights": {str(c): dict(w) for c, w in model.weights.items()},
        "g2": {str(c): dict(o.g2) for c, o in model.optimizers.items()},
        "steps": {str(c): o.n_iterations for c, o in model.optimizers.items()},
    }


def load_softmax(
    doc: Any, learning_rate: float, classes: list[str]
) -> linear_model.SoftmaxRegression:
    if not isinstance(doc, dict):
        raise SnapshotError("model must be an object")
    model = linear_model.SoftmaxRegression(optimizer=optim.AdaGrad(learning_rate))
    for name, what in (("weights", "model.weights"), ("g2", "model.g2"), ("steps", "model.steps")):
        part = doc.get(name)
        if not isinstance(part, dict) or not set(part) <= set(classes):
            raise SnapshotError(f"{what} must be an object keyed by catalog personas")
    for c, w in doc["weights"].items():
        model.weights[c] = collections.defaultdict(float, _floats(w, f"model.weights[{c!r}]"))
    for c, g2 in doc["g2"].items():
        opt = optim.AdaGrad(learning_rate)
        opt.g2.update(_floats(g2, f"model.g2[{c!r}]"))
        steps = doc["steps"].get(c, 0)
        opt.n_iterations = steps if isinstance(steps, int) and steps >= 0 else 0
        model.optimizers[c] = opt
    return model
