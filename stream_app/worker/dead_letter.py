"""Dead letters: what could not be processed, with the reason and the original bytes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class DeadLetter:
    reason: str  # short machine-readable cause: undecodable, invalid_event, unknown_persona, ...
    detail: str  # human-readable explanation
    key: bytes | None
    payload: bytes
    source: str = ""  # topic/partition@offset of the original message
    step: str = ""  # the pipeline step that refused it

    def to_json_bytes(self) -> bytes:
        try:
            payload: Any = self.payload.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            payload = base64.b64encode(self.payload).decode("ascii")
            encoding = "base64"
        doc = {
            "reason": self.reason,
            "detail": self.detail,
            "step": self.step,
            "source": self.source,
            "failed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "payload_encoding": encoding,
            "payload": payload,
        }
        return json.dumps(doc, separators=(",", ":")).encode()
