"""What the edge learns of where a visitor is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["cdn", "ip", "event"]


@dataclass(frozen=True, slots=True)
class Location:
    country: str  # ISO 3166-1 alpha-2, upper case
    region: str | None = None  # subdivision (ISO 3166-2 part, e.g. "CA"), when known
    source: Source = "ip"  # where it came from (for tests and metrics; never stored)
