"""Complaints per 10,000 contacts, and the cases at the end of the period (``report``).

A contact is a send that reached the person (delivered, answered, voicemail, opened,
clicked) in the period; a complaint is a ``complaint`` event in the period (every
complaint case writes one, whichever way it came: the events API, ``/api/v1/cases``).
Complaints count by the stage the account was in when it complained, by the channel it
came by (``unknown`` when not said: no rate, it has no contacts), and by the account's
creditor; contacts by the send's stage, channel and account's creditor. Each rate says
its numerator and denominator. Cases: those opened in the period by kind, and those
open and overdue at ``as_of`` (the end of the period, or now if that is earlier).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.core.state import REACHED
from orchestrator.store.tables import AccountEvent, AccountRow, CaseFile, Decision, Send, table_of

__all__ = ["PER", "case_figures"]

PER = 10_000


def _rate(complaints: int, contacts: int) -> dict[str, Any]:
    value = round(complaints * PER / contacts, 1) if contacts else None
    return {"complaints": complaints, "contacts": contacts, "per_10000": value}


def case_figures(
    conn: Connection,
    *,
    stage_of: Callable[[str, datetime], str | None],
    stages: list[str],
    in_period: Any,
    start: datetime,
    end: datetime,
    as_of: datetime,
) -> dict[str, Any]:
    """``complaint_rates`` (by stage, channel, creditor and in all) and ``cases``."""
    contacts = _contacts(conn, in_period)
    complaints = _complaints(conn, stage_of, start, end)
    rates: dict[str, Any] = {"per": PER}
    for dim in ("stage", "channel", "creditor"):
        keys = stages if dim == "stage" else sorted(set(contacts[dim]) | set(complaints[dim]))
        rates[dim] = [{dim: key, **_rate(complaints[dim][key], contacts[dim][key])} for key in keys]
    rates["total"] = _rate(sum(complaints["all"].values()), sum(contacts["all"].values()))
    return {"complaint_rates": rates, "cases": _cases(conn, start, end, as_of)}


def _contacts(conn: Connection, in_period: Any) -> dict[str, Counter[str]]:
    d, s, a = table_of(Decision), table_of(Send), table_of(AccountRow)
    found: dict[str, Counter[str]] = {k: Counter() for k in ("stage", "channel", "creditor", "all")}
    for stage, channel, creditor, count in conn.execute(
        sa.select(d.c.stage, d.c.channel, a.c.creditor, sa.func.count())
        .select_from(
            d.join(s, s.c.message_id == d.c.message_id).join(a, a.c.account_id == d.c.account_id)
        )
        .where(in_period, d.c.decision == "sent", s.c.status.in_(sorted(REACHED)))
        .group_by(d.c.stage, d.c.channel, a.c.creditor)
    ):
        found["stage"][stage or "-"] += count
        found["channel"][channel or "unknown"] += count
        found["creditor"][creditor or "-"] += count
        found["all"]["all"] += count
    return found


def _complaints(
    conn: Connection,
    stage_of: Callable[[str, datetime], str | None],
    start: datetime,
    end: datetime,
) -> dict[str, Counter[str]]:
    e, a = table_of(AccountEvent), table_of(AccountRow)
    found: dict[str, Counter[str]] = {k: Counter() for k in ("stage", "channel", "creditor", "all")}
    for account_id, channel, creditor, at in conn.execute(
        sa.select(e.c.account_id, e.c.channel, a.c.creditor, e.c.time)
        .select_from(e.join(a, a.c.account_id == e.c.account_id))
        .where(e.c.type == "complaint", e.c.time >= start, e.c.time < end)
    ):
        found["stage"][stage_of(account_id, at) or "-"] += 1
        found["channel"][channel or "unknown"] += 1
        found["creditor"][creditor or "-"] += 1
        found["all"]["all"] += 1
    return found


def _cases(conn: Connection, start: datetime, end: datetime, as_of: datetime) -> dict[str, Any]:
    c = table_of(CaseFile)
    opened: dict[str, int] = {
        kind: count
        for kind, count in conn.execute(
            sa.select(c.c.kind, sa.func.count())
            .where(c.c.opened_at >= start, c.c.opened_at < end)
            .group_by(c.c.kind)
        )
    }
    unresolved = sa.and_(
        c.c.opened_at <= as_of, sa.or_(c.c.resolved_at.is_(None), c.c.resolved_at > as_of)
    )
    late = sa.or_(
        c.c.due_resolve_at <= as_of,
        sa.and_(
            c.c.due_ack_at <= as_of,
            sa.or_(c.c.acknowledged_at.is_(None), c.c.acknowledged_at > as_of),
        ),
    )
    count = sa.select(sa.func.count()).select_from(c)
    return {
        "as_of": as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "opened": {"complaint": opened.get("complaint", 0), "dispute": opened.get("dispute", 0)},
        "open": conn.execute(count.where(unresolved)).scalar_one(),
        "overdue": conn.execute(count.where(unresolved, late)).scalar_one(),
    }
