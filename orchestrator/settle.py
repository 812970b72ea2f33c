"""What a dispatched batch leaves in the tables, a statement per kind of row.

After a batch the daemon writes a decision row for each occurrence, moves each
occurrence on from ``sending`` (to sent, deferred, failed...) and gives each send row
its status and provider id. Sent one row at a time, that is three statements per send;
here each kind is one statement per batch on PostgreSQL (decisions by ``COPY``, the two
updates joined to the batch's values passed as arrays) and one ``executemany`` on
SQLite, which runs in process.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from orchestrator.bulk import BulkInsert
from orchestrator.models import Decision, Occurrence, Send, UTCDateTime, table_of
from orchestrator.records import DecisionRecord
from orchestrator.store import decision_values

__all__ = ["Moved", "Settler"]

decision_t = table_of(Decision)
occurrence_t = table_of(Occurrence)
send_t = table_of(Send)

_DECISION_COLUMNS = tuple(c.name for c in decision_t.c if c.name != "id")
_decision_row = operator.itemgetter(*_DECISION_COLUMNS)


@dataclass(frozen=True)
class Moved:
    """One occurrence moved on from ``sending``: to ``state``, due again at ``next``
    when it was deferred (else its due time stays)."""

    occurrence_id: int
    state: str
    next: datetime | None = None


class Settler:
    """Writes a batch's outcomes on connections of one dialect."""

    def __init__(self, dialect: Dialect):
        self.postgres = dialect.name == "postgresql"
        self._decisions = BulkInsert(decision_t, _DECISION_COLUMNS, dialect)

    def decisions(self, conn: Connection, records: Sequence[tuple[int | None, DecisionRecord]]
                  ) -> None:
        """A decision row for each ``(occurrence id, record)``."""
        if records:
            self._decisions(conn, [
                _decision_row(decision_values(r, occurrence_id=i)) for i, r in records])

    def occurrences(self, conn: Connection, moved: Sequence[Moved], now: datetime, *,
                    attempted: bool) -> None:
        """Move occurrences on from ``sending``; ``attempted``: the adapter was called (one
        more attempt against the retry policy; a deferral by the gate is not one)."""
        if not moved:
            return
        if self.postgres:
            conn.execute(_MOVE_PG_ATTEMPTED if attempted else _MOVE_PG, {
                "ids": [m.occurrence_id for m in moved], "states": [m.state for m in moved],
                "nexts": [m.next for m in moved], "now": now})
        else:
            conn.execute(_MOVE_ATTEMPTED if attempted else _MOVE, [
                {"b_id": m.occurrence_id, "b_state": m.state, "b_next": m.next, "b_now": now}
                for m in moved])

    def sends(self, conn: Connection, statuses: Sequence[tuple[str, str, str | None]],
              now: datetime) -> None:
        """Each ``(message id, status, provider id)``: the send's status, unless a status
        callback already moved it on from ``sending`` (a fast delivery report, a call
        answered: that status stands), and its provider id if it had none."""
        if not statuses:
            return
        if self.postgres:
            conn.execute(_SEND_STATUS_PG, {
                "mids": [m for m, _, _ in statuses], "statuses": [s for _, s, _ in statuses],
                "providers": [p for _, _, p in statuses], "now": now})
        else:
            conn.execute(_SEND_STATUS, [
                {"b_mid": m, "b_status": s, "b_provider": p, "b_now": now}
                for m, s, p in statuses])


def _move(*, attempted: bool) -> sa.Update:
    extra: dict[str, Any] = {"attempts": occurrence_t.c.attempts + 1} if attempted else {}
    return occurrence_t.update().where(
        occurrence_t.c.id == sa.bindparam("b_id"),
        occurrence_t.c.state == sa.literal_column("'sending'"),
    ).values(
        state=sa.bindparam("b_state"),
        next_attempt_at=sa.func.coalesce(sa.bindparam("b_next", type_=UTCDateTime()),
                                         occurrence_t.c.next_attempt_at),
        updated_at=sa.bindparam("b_now"),
        lease_until=None,
        **extra,
    )


def _move_pg(*, attempted: bool) -> sa.TextClause:
    attempts = ", attempts = o.attempts + 1" if attempted else ""
    return sa.text(
        "UPDATE occurrence AS o SET state = v.state, "
        "next_attempt_at = coalesce(v.next, o.next_attempt_at), updated_at = :now, "
        f"lease_until = NULL{attempts} "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(:states AS text[]), "
        "CAST(:nexts AS timestamptz[])) AS v(id, state, next) "
        "WHERE o.id = v.id AND o.state = 'sending'"
    ).bindparams(sa.bindparam("now", type_=UTCDateTime()))


_MOVE = _move(attempted=False)
_MOVE_ATTEMPTED = _move(attempted=True)
_MOVE_PG = _move_pg(attempted=False)
_MOVE_PG_ATTEMPTED = _move_pg(attempted=True)

_STILL_SENDING = send_t.c.status == "sending"
_SEND_STATUS = send_t.update().where(send_t.c.message_id == sa.bindparam("b_mid")).values(
    status=sa.case((_STILL_SENDING, sa.bindparam("b_status")), else_=send_t.c.status),
    provider_id=sa.func.coalesce(send_t.c.provider_id, sa.bindparam("b_provider")),
    status_at=sa.case((_STILL_SENDING, sa.bindparam("b_now")), else_=send_t.c.status_at))
_SEND_STATUS_PG = sa.text(
    "UPDATE send AS s SET "
    "status = CASE WHEN s.status = 'sending' THEN v.status ELSE s.status END, "
    "provider_id = coalesce(s.provider_id, v.provider), "
    "status_at = CASE WHEN s.status = 'sending' THEN :now ELSE s.status_at END "
    "FROM unnest(CAST(:mids AS text[]), CAST(:statuses AS text[]), "
    "CAST(:providers AS text[])) AS v(mid, status, provider) "
    "WHERE s.message_id = v.mid"
).bindparams(sa.bindparam("now", type_=UTCDateTime()))
