"""Promises, settlements and plans by where they were made (``report``): on the e-bill
page (``self_service``) apart from the rest (the REST API, agents through it, and those
recorded before sources were kept).

Counted over the promises, settlements and plans made in the period. A promise's **kept
rate** is kept / (kept + broken), as the report's own (pending ones are not yet
counted); a settlement's is settled / (settled + lapsed), with the amount waived on
those settled; a plan's is completed / (completed + broken) (active ones are not yet
counted). A settlement is stored as a promise that waives the rest of the balance: it is
counted here apart, never among the promises.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.core.ebill import SELF_SERVICE
from orchestrator.store.tables import AccountRow, InstalmentPlan, Promise, table_of

__all__ = ["SOURCES", "source_figures", "sources_text"]

SOURCES = (SELF_SERVICE, "api")  # "api": every source but the e-bill page's


def _kept(kept: int, broken: int) -> dict[str, Any]:
    decided = kept + broken
    return {"kept": kept, "of": decided, "rate": round(kept / decided, 4) if decided else None}


def source_figures(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """``{"self_service": {...}, "api": {...}}``: each with the ``promises``,
    ``settlements`` and ``plans`` made in the period, their ``promise_kept``,
    ``settlement_kept`` and ``plan_kept`` rates, and the amounts ``waived`` on the
    settlements settled (by currency: ``{"USD": "300.00"}``)."""
    p, q = table_of(Promise), table_of(InstalmentPlan)
    promises = _states(conn, p, p.c.made_at, start, end, p.c.waived.is_(None))
    settlements = _states(conn, p, p.c.made_at, start, end, p.c.waived.is_not(None))
    plans = _states(conn, q, q.c.created_at, start, end)
    waived = _waived(conn, p, start, end)
    out: dict[str, Any] = {}
    for source in SOURCES:
        made, settled, done = promises[source], settlements[source], plans[source]
        out[source] = {
            "promises": sum(made.values()),
            "promise_kept": _kept(made.get("kept", 0), made.get("broken", 0)),
            "settlements": sum(settled.values()),
            "settlement_kept": _kept(settled.get("kept", 0), settled.get("broken", 0)),
            "waived": waived[source],
            "plans": sum(done.values()),
            "plan_kept": _kept(done.get("completed", 0), done.get("broken", 0)),
        }
    return out


def _source(value: str | None) -> str:
    return SELF_SERVICE if value == SELF_SERVICE else "api"


def _states(
    conn: Connection,
    table: sa.Table,
    made: Any,
    start: datetime,
    end: datetime,
    *where: sa.ColumnElement[bool],
) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {source: {} for source in SOURCES}
    for source, state, count in conn.execute(
        sa.select(table.c.source, table.c.state, sa.func.count())
        .where(made >= start, made < end, *where)
        .group_by(table.c.source, table.c.state)
    ):
        states = found[_source(source)]
        states[state] = states.get(state, 0) + count
    return found


def _waived(
    conn: Connection, p: sa.Table, start: datetime, end: datetime
) -> dict[str, dict[str, str]]:
    """The amount waived on the settlements made in the period and settled, by source
    and currency (the account's)."""
    a = table_of(AccountRow)
    sums: dict[str, dict[str, Decimal]] = {source: {} for source in SOURCES}
    for source, currency, total in conn.execute(
        sa.select(p.c.source, a.c.currency, sa.func.sum(p.c.waived))
        .select_from(p.join(a, a.c.account_id == p.c.account_id))
        .where(p.c.made_at >= start, p.c.made_at < end, p.c.waived.is_not(None))
        .where(p.c.state == "kept")
        .group_by(p.c.source, a.c.currency)
    ):
        by = sums[_source(source)]
        by[currency] = by.get(currency, Decimal(0)) + Decimal(total or 0)
    return {s: {c: f"{v:.2f}" for c, v in sorted(by.items())} for s, by in sums.items()}


def _rate_text(kept: Mapping[str, Any]) -> str:
    rate = "-" if kept["rate"] is None else f"{kept['rate']:.0%}"
    return f"{kept['kept']}/{kept['of']} kept ({rate})"


def _waived_text(waived: Mapping[str, str]) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in waived.items()) or "nothing"


def sources_text(sources: Mapping[str, Any]) -> str:
    """``e-bill: 3 promises, 2/2 kept (100%), 1 plan ...; API and agents: ...``."""
    parts = []
    for source, label in ((SELF_SERVICE, "e-bill (self-service)"), ("api", "API and agents")):
        f = sources[source]
        parts.append(
            f"{label}: {f['promises']} promises, {_rate_text(f['promise_kept'])}; "
            f"{f['settlements']} settlements, "
            f"{_rate_text(f['settlement_kept']).replace('kept', 'settled')}, "
            f"{_waived_text(f['waived'])} waived; "
            f"{f['plans']} plans, {_rate_text(f['plan_kept'])}"
        )
    return "; ".join(parts)
