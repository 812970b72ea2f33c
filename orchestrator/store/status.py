"""What ``outreach status`` and ``GET /api/v1/status`` tell: the workers (from their
heartbeats), what is due and late, today's sends and decisions, ambiguous sends waiting
for a person, the operator pauses in force, the complaint and dispute cases open and
overdue, the outbound webhooks retrying or dead, and the tasks (with the cases) open and
overdue. Reads only; no personal data.
"""

from __future__ import annotations

import os
import socket
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.core.records import iso_utc
from orchestrator.store.cases import past_due
from orchestrator.store.db import insert_for
from orchestrator.store.pauses import active_pauses
from orchestrator.store.tables import (
    CaseFile,
    Decision,
    OccurrenceRow,
    Send,
    Task,
    WorkerHeartbeat,
    table_of,
)
from orchestrator.store.webhook_outbox import summary as webhook_summary

__all__ = ["ALIVE_WITHIN", "LATE_AFTER", "beat", "status"]

heartbeat_t = table_of(WorkerHeartbeat)
occurrence_t = table_of(OccurrenceRow)
decision_t = table_of(Decision)
send_t = table_of(Send)
task_t = table_of(Task)
case_t = table_of(CaseFile)

# A worker that has not written a heartbeat for this long is shown as not alive (its
# dispatch job runs every few seconds, its planning job every minute).
ALIVE_WITHIN = timedelta(minutes=2)
# A due send not decided this long after its time is shown as late: workers are down,
# too few, or a provider is slow.
LATE_AFTER = timedelta(minutes=10)
_DUE = ("pending", "deferred")


def beat(
    conn: Connection,
    worker: str,
    version: str,
    started_at: datetime,
    now: datetime,
    *,
    planned: tuple[int, float] | None = None,
) -> None:
    """Write this worker's heartbeat; with ``planned`` (occurrences, seconds), also the
    planning round that just ended."""
    values: dict[str, Any] = {
        "worker": worker,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": version,
        "started_at": started_at,
        "beat_at": now,
    }
    if planned is not None:
        values.update(plan_at=now, plan_occurrences=planned[0], plan_seconds=planned[1])
    insert = insert_for(conn)
    statement = insert(heartbeat_t).values(values)
    update = {k: statement.excluded[k] for k in values if k != "worker"}
    conn.execute(statement.on_conflict_do_update(index_elements=["worker"], set_=update))


def _workers(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    out = []
    for row in conn.execute(sa.select(heartbeat_t).order_by(heartbeat_t.c.worker)):
        beat_at = row.beat_at  # UTCDateTime: aware
        out.append(
            {
                "worker": row.worker,
                "host": row.host,
                "pid": row.pid,
                "version": row.version,
                "started_at": iso_utc(row.started_at),
                "last_heartbeat": iso_utc(row.beat_at),
                "seconds_since_heartbeat": int((now - beat_at).total_seconds()),
                "alive": now - beat_at <= ALIVE_WITHIN,
                "last_planning": None
                if row.plan_at is None
                else {
                    "at": iso_utc(row.plan_at),
                    "occurrences": row.plan_occurrences,
                    "seconds": round(row.plan_seconds or 0.0, 3),
                },
            }
        )
    return out


def _by_channel(rows: Any) -> dict[str, int]:
    return {str(channel): int(n) for channel, n in rows}


def _occurrences(conn: Connection, now: datetime) -> dict[str, Any]:
    o = occurrence_t.c
    due = sa.and_(o.state.in_(_DUE), o.next_attempt_at <= now)
    count_by = sa.select(o.channel, sa.func.count()).group_by(o.channel).order_by(o.channel)
    ambiguous = conn.execute(
        sa.select(sa.func.count()).select_from(occurrence_t).where(o.state == "ambiguous")
    ).scalar_one()
    return {
        "due": _by_channel(conn.execute(count_by.where(due))),
        "late": _by_channel(
            conn.execute(count_by.where(due, o.next_attempt_at <= now - LATE_AFTER))
        ),
        "ambiguous": int(ambiguous),
    }


def _today(conn: Connection, now: datetime) -> dict[str, Any]:
    """Decisions and sends since midnight UTC."""
    start = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    d, s = decision_t.c, send_t.c
    decisions: dict[str, dict[str, int]] = defaultdict(dict)
    for channel, decision, n in conn.execute(
        sa.select(d.channel, d.decision, sa.func.count())
        .where(d.time >= start, d.time <= now)
        .group_by(d.channel, d.decision)
    ):
        decisions[channel or "-"][decision] = int(n)
    sends = _by_channel(
        conn.execute(
            sa.select(s.channel, sa.func.count())
            .where(s.sent_at >= start, s.sent_at <= now)
            .group_by(s.channel)
            .order_by(s.channel)
        )
    )
    return {
        "since": iso_utc(start),
        "sends": sends,
        "decisions": {k: dict(sorted(v.items())) for k, v in sorted(decisions.items())},
    }


def _cases(conn: Connection, now: datetime) -> dict[str, Any]:
    """Unresolved cases by kind, and those past a due time (unacknowledged after their
    acknowledgement was due, or unresolved after their resolution was), as ``cases list
    --overdue`` finds them."""
    rows = conn.execute(
        sa.select(
            case_t.c.kind,
            sa.func.count(),
            sa.func.count().filter(past_due(now)),
        )
        .where(case_t.c.resolved_at.is_(None))
        .group_by(case_t.c.kind)
        .order_by(case_t.c.kind)
    ).all()
    return {
        "open": {kind: n for kind, n, _ in rows},
        "overdue": {kind: n for kind, _, n in rows if n},
    }


def status(conn: Connection, now: datetime) -> dict[str, Any]:
    """Everything ``outreach status`` shows, as one JSON-ready dict."""
    cases = _cases(conn, now)
    return {
        "time": iso_utc(now),
        "workers": _workers(conn, now),
        "occurrences": _occurrences(conn, now),
        "today": _today(conn, now),
        "pauses": [p.as_json() for p in active_pauses(conn)],
        "cases": cases,
        "webhooks": webhook_summary(conn),
        "work": _work(conn, now, cases),
    }


def _work(conn: Connection, now: datetime, cases: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Tasks not done and how many are overdue; the cases' totals of ``_cases``."""
    t = task_t.c
    tasks = conn.execute(
        sa.select(sa.func.count(), sa.func.count().filter(t.due_at <= now)).where(t.state != "done")
    ).one()
    return {
        "tasks": {"open": int(tasks[0]), "overdue": int(tasks[1])},
        "cases": {
            "open": sum(cases["open"].values()),
            "overdue": sum(cases["overdue"].values()),
        },
    }
