"""Promises and plans by where they were made (``report``): on the e-bill page
(``self_service``) apart from the rest (the REST API, agents through it, and those
recorded before sources were kept).

Counted over the promises and plans made in the period. A promise's **kept rate** is
kept / (kept + broken), as the report's own (pending ones are not yet counted); a
plan's is completed / (completed + broken) (active ones are not yet counted).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.core.ebill import SELF_SERVICE
from orchestrator.store.tables import InstalmentPlan, Promise, table_of

__all__ = ["SOURCES", "source_figures", "sources_text"]

SOURCES = (SELF_SERVICE, "api")  # "api": every source but the e-bill page's


def _kept(kept: int, broken: int) -> dict[str, Any]:
    decided = kept + broken
    return {"kept": kept, "of": decided, "rate": round(kept / decided, 4) if decided else None}


def source_figures(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """``{"self_service": {...}, "api": {...}}``: each with ``promises`` and ``plans``
    made in the period, and their ``promise_kept`` and ``plan_kept`` rates."""
    p, q = table_of(Promise), table_of(InstalmentPlan)
    promises = _states(conn, p, p.c.made_at, start, end)
    plans = _states(conn, q, q.c.created_at, start, end)
    out: dict[str, Any] = {}
    for source in SOURCES:
        made, done = promises[source], plans[source]
        out[source] = {
            "promises": sum(made.values()),
            "promise_kept": _kept(made.get("kept", 0), made.get("broken", 0)),
            "plans": sum(done.values()),
            "plan_kept": _kept(done.get("completed", 0), done.get("broken", 0)),
        }
    return out


def _states(
    conn: Connection, table: sa.Table, made: Any, start: datetime, end: datetime
) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {source: {} for source in SOURCES}
    for source, state, count in conn.execute(
        sa.select(table.c.source, table.c.state, sa.func.count())
        .where(made >= start, made < end)
        .group_by(table.c.source, table.c.state)
    ):
        states = found[SELF_SERVICE if source == SELF_SERVICE else "api"]
        states[state] = states.get(state, 0) + count
    return found


def _rate_text(kept: Mapping[str, Any]) -> str:
    rate = "-" if kept["rate"] is None else f"{kept['rate']:.0%}"
    return f"{kept['kept']}/{kept['of']} kept ({rate})"


def sources_text(sources: Mapping[str, Any]) -> str:
    """``e-bill: 3 promises, 2/2 kept (100%), 1 plan ...; API and agents: ...``."""
    parts = []
    for source, label in ((SELF_SERVICE, "e-bill (self-service)"), ("api", "API and agents")):
        f = sources[source]
        parts.append(
            f"{label}: {f['promises']} promises, {_rate_text(f['promise_kept'])}; "
            f"{f['plans']} plans, {_rate_text(f['plan_kept'])}"
        )
    return "; ".join(parts)
