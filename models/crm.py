"""Batch reverse mapping of CRM rows: one customer row -> persona distribution.

A row is turned into the native events it describes and scored by the same
:class:`~models.mapper.PersonaMapper` as live traffic. Columns (all optional but ``id``):

* ``id`` (or ``customer_id``): the customer id, copied to the output;
* ``user_agent``, ``country``: device and geo context;
* ``landing_url``, ``referrer``: the first visit (UTM parameters are read from the URL);
* ``pages``: ``;``-separated URL paths or absolute URLs visited;
* ``touchpoints``: ``;``-separated ``channel:action`` pairs (INTERFACES.md 1.1 values);
* ``last_seen``: RFC 3339 time of the last activity (default 2026-01-01T12:00:00Z).

A row that cannot be mapped raises :class:`RowError` with a message naming the column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.catalog import TOUCH_ACTIONS, TOUCH_CHANNELS
from models.mapper import PersonaMapper

DEFAULT_TS = "2026-01-01T12:00:00Z"
SITE = "https://crm.invalid"
MAX_ITEMS = 200


class RowError(ValueError):
    """This row cannot be mapped; the message names the column and the problem."""


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


def row_events(row: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The customer id and the native events a CRM row describes."""
    cid = (row.get("id") or row.get("customer_id") or "").strip()
    if not cid:
        raise RowError("id: missing customer id")
    ts = (row.get("last_seen") or "").strip() or DEFAULT_TS
    try:
        if datetime.fromisoformat(ts.replace("Z", "+00:00")).tzinfo is None:
            raise ValueError("no offset")
    except ValueError:
        raise RowError(f"last_seen: not an RFC 3339 time with offset: {ts[:40]!r}") from None
    context = {k: row[k].strip() for k in ("user_agent", "country") if isinstance(row.get(k), str)}
    context = {k: v for k, v in context.items() if v}
    base = {"visitor_id": cid, "ts": ts, "context": context}
    events: list[dict[str, Any]] = []
    landing = (row.get("landing_url") or "").strip()
    pages = _split(row.get("pages"))
    if landing:
        pages.insert(0, landing)
    if len(pages) > MAX_ITEMS:
        raise RowError(f"pages: more than {MAX_ITEMS} entries")
    for i, page in enumerate(pages):
        if page.startswith(("http://", "https://")):
            url = page
        elif page.startswith("/"):
            url = SITE + page
        else:
            raise RowError(f"pages: {page[:60]!r} is neither a path nor an http(s) URL")
        referrer = (row.get("referrer") or "").strip() if i == 0 else url
        events.append(
            {
                **base,
                "event_id": f"{cid}-p{i}",
                "type": "page_view",
                "url": url,
                "referrer": referrer,
            }
        )
    touches = _split(row.get("touchpoints"))
    if len(touches) > MAX_ITEMS:
        raise RowError(f"touchpoints: more than {MAX_ITEMS} entries")
    for i, touch in enumerate(touches):
        channel, _, action = touch.partition(":")
        if channel not in TOUCH_CHANNELS or action not in TOUCH_ACTIONS:
            raise RowError(f"touchpoints: {touch[:60]!r} is not channel:action")
        events.append(
            {
                **base,
                "event_id": f"{cid}-t{i}",
                "type": "touchpoint",
                "channel": channel,
                "action": action,
            }
        )
    return cid, events


def map_row(mapper: PersonaMapper, row: dict[str, Any]) -> dict[str, Any]:
    """``{"id", "top_persona", "probability", "phase", "personas": {...}}`` for one row."""
    cid, events = row_events(row)
    state = mapper.observe_many(mapper.new_state(), events)
    personas = mapper.score(state)
    top = max(personas, key=personas.__getitem__)
    return {
        "id": cid,
        "top_persona": top,
        "probability": personas[top],
        "phase": state["phase"],
        "personas": personas,
    }
