"""ISO 3166-1 alpha-2 codes: what a country value must be before it enters an event."""

from __future__ import annotations

import pycountry

# Every assigned alpha-2 code. CDN and database placeholders ("XX" unknown, "T1" Tor,
# "A1"/"A2"/"O1" anonymous proxies, "EU"/"AP" continents) are not in it and are dropped.
ALPHA_2: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)


def iso_country(value: object) -> str | None:
    """``value`` as an upper-case assigned alpha-2 code, or None."""
    if not isinstance(value, str) or len(value) != 2:
        return None
    code = value.upper()
    return code if code in ALPHA_2 else None


def clean_region(value: object) -> str | None:
    """A region (subdivision) value fit for ``context.region``: short printable text, or None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > 64 or not value.isprintable():
        return None
    return value
