"""What the runner writes a batch at a time, a statement per kind of row.

Before its adapter calls, a batch records a send row ``sending`` for each message;
after them, a decision row for each occurrence, each occurrence moved on from
``sending`` (to sent, deferred, failed...) and each send row's status and provider id.
Sent one row at a time, that is four statements per send; here each kind is one
statement per batch on PostgreSQL (decisions by ``COPY``, the others joined to the
batch's values passed as arrays, each array as one string: ``inlist.pg_array``), and
what a sent batch writes after its adapter calls is one statement in all
(``Settler.settled``); on SQLite, which runs in process, one ``executemany`` per kind.
A planning page likewise marks, in one statement, when each of its accounts is due
again and, for those that moved, which stage they are in (``PlannedAccount``).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Dialect

from orchestrator.core.planner import StageMark
from orchestrator.core.records import DecisionRecord
from orchestrator.store.accounts import decision_values
from orchestrator.store.bulk import BulkInsert
from orchestrator.store.inlist import pg_array
from orchestrator.store.tables import (
    AccountRow,
    Decision,
    OccurrenceRow,
    Send,
    UTCDateTime,
    table_of,
)

__all__ = ["Moved", "PlannedAccount", "Sending", "Settler", "send_status"]

account_t = table_of(AccountRow)
decision_t = table_of(Decision)
occurrence_t = table_of(OccurrenceRow)
send_t = table_of(Send)

_DECISION_COLUMNS = tuple(c.name for c in decision_t.c if c.name != "id")
_DECISION_PARAMS = tuple(f"d_{name}" for name in _DECISION_COLUMNS)  # _settled_pg's
_decision_row = operator.itemgetter(*_DECISION_COLUMNS)


@dataclass(frozen=True)
class Moved:
    """One occurrence moved on from ``sending``: to ``state``, due again at ``next``
    when it was deferred (else its due time stays)."""

    occurrence_id: int
    state: str
    next: datetime | None = None


@dataclass(frozen=True)
class PlannedAccount:
    """One account planned: due again at ``due`` unless its data or facts changed since
    it was read (``plan_seq`` moved on); ``stage``: the stage it moved to (what
    ``account show`` and reports tell), ``None`` when it stays where it was."""

    account_id: str
    plan_seq: int
    due: datetime
    stage: StageMark | None = None


@dataclass(frozen=True)
class Sending:
    """A send about to be handed to its adapter."""

    message_id: str
    account_id: str
    debtor_id: str
    channel: str
    occurrence_id: int
    to_index: str | None


def send_status(decision: str) -> str:
    """A send row's status once its adapter answered: ``sent``, ``ambiguous`` (it may have
    gone out), else ``failed``."""
    return decision if decision in ("sent", "ambiguous") else "failed"


class Settler:
    """Writes a batch's outcomes on connections of one dialect."""

    def __init__(self, dialect: Dialect):
        self.postgres = dialect.name == "postgresql"
        self._decisions = BulkInsert(decision_t, _DECISION_COLUMNS, dialect)
        self._sending = _sending_sqlite()
        self._settled_pg = _settled_pg(dialect) if self.postgres else None

    def sending(self, conn: Connection, sends: Sequence[Sending], now: datetime) -> int:
        """A send row ``sending`` for each, or the same row again after a transient
        failure (a retry); returns how many were written, which is fewer than given when
        one of them already has a send row that did not fail (never send that again)."""
        if not sends:
            return 0
        if self.postgres:
            return len(conn.execute(_SENDING_PG, {**_arrays(
                ("mids", "accounts", "debtors", "channels", "occurrences", "indexes"),
                [(s.message_id, s.account_id, s.debtor_id, s.channel, s.occurrence_id,
                  s.to_index) for s in sends]), "now": now}).all())
        return len(conn.execute(self._sending, [{
            "message_id": s.message_id, "account_id": s.account_id, "debtor_id": s.debtor_id,
            "channel": s.channel, "occurrence_id": s.occurrence_id, "status": "sending",
            "sent_at": now, "status_at": None, "to_index": s.to_index} for s in sends]).all())

    def decisions(self, conn: Connection, records: Sequence[tuple[int | None, DecisionRecord]]
                  ) -> None:
        """A decision row for each ``(occurrence id, record)``."""
        if records:
            self._decisions(conn, [
                _decision_row(decision_values(r, occurrence_id=i)) for i, r in records])

    def settled(self, conn: Connection, records: Sequence[tuple[int, DecisionRecord]],
                moved: Sequence[Moved], statuses: Sequence[tuple[str, str, str | None]],
                now: datetime) -> None:
        """A sent batch: ``decisions``, ``occurrences`` (attempted) and ``sends`` together.
        On PostgreSQL that is one statement, so one round trip where there were three
        and, on a connection in autocommit, its own transaction: a daemon's recorder
        thread waits for the interpreter lock after every round trip, and waited more
        than the database worked."""
        if self._settled_pg is None:
            self.decisions(conn, records)
            self.occurrences(conn, moved, now, attempted=True)
            self.sends(conn, statuses, now)
            return
        if not (records or moved or statuses):
            return
        params = _arrays(_DECISION_PARAMS, [
            _decision_row(decision_values(r, occurrence_id=i)) for i, r in records])
        params.update(_moved_params(moved, now))
        params.update(_status_params(statuses, now))
        conn.execute(self._settled_pg, params)

    def planned(self, conn: Connection, accounts: Sequence[PlannedAccount]) -> None:
        """Each account is planned until its ``due``, and in the stage it moved to,
        unless its data or facts changed since it was read (``plan_seq`` moved on: it
        stays due, its stage is written at its next planning). The stage rides on the
        update that was there anyway (no statement more per page) and is written only
        for the accounts that moved (most days, none of a page)."""
        if accounts:
            (_planned_pg if self.postgres else _planned_sqlite)(conn, accounts)

    def occurrences(self, conn: Connection, moved: Sequence[Moved], now: datetime, *,
                    attempted: bool) -> None:
        """Move occurrences on from ``sending``; ``attempted``: the adapter was called (one
        more attempt against the retry policy; a deferral by the gate is not one)."""
        if not moved:
            return
        if self.postgres:
            conn.execute(_MOVE_PG_ATTEMPTED if attempted else _MOVE_PG, _moved_params(moved, now))
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
            conn.execute(_SEND_STATUS_PG, _status_params(statuses, now))
        else:
            conn.execute(_SEND_STATUS, [
                {"b_mid": m, "b_status": s, "b_provider": p, "b_now": now}
                for m, s, p in statuses])


def _planned_pg(conn: Connection, accounts: Sequence[PlannedAccount]) -> None:
    """One statement: the page's due times, joined to the stages of those that moved."""
    params = _arrays(("ids", "seqs", "dues"),
                     [(p.account_id, p.plan_seq, p.due) for p in accounts])
    moved = [(p.account_id, p.stage.stage, p.stage.entered_at, p.stage.balance_at_entry)
             for p in accounts if p.stage is not None]
    if moved:
        params.update(_arrays(("moved", "stages", "entered", "balances"), moved))
    conn.execute(_STAGED_PG if moved else _PLANNED_PG, params)


def _planned_sqlite(conn: Connection, accounts: Sequence[PlannedAccount]) -> None:
    """SQLite runs in process: an ``executemany`` for the accounts that stayed in their
    stage, one for those that moved."""
    stayed = [{"b_id": p.account_id, "b_seq": p.plan_seq, "b_due": p.due}
              for p in accounts if p.stage is None]
    moved = [{"b_id": p.account_id, "b_seq": p.plan_seq, "b_due": p.due,
              "b_stage": p.stage.stage, "b_entered": p.stage.entered_at,
              "b_balance": p.stage.balance_at_entry}
             for p in accounts if p.stage is not None]
    for statement, rows in ((_PLANNED, stayed), (_STAGED, moved)):
        if rows:
            conn.execute(statement, rows)


def _arrays(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Rows of values as one array parameter per column (``inlist.pg_array``), named
    ``names`` in order: what the PostgreSQL statements here ``unnest``."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return {name: pg_array(column) for name, column in zip(names, columns, strict=True)}


def _moved_params(moved: Sequence[Moved], now: datetime) -> dict[str, Any]:
    return {**_arrays(("ids", "states", "nexts"),
                      [(m.occurrence_id, m.state, m.next) for m in moved]), "now": now}


def _status_params(statuses: Sequence[tuple[str, str, str | None]], now: datetime
                   ) -> dict[str, Any]:
    return {**_arrays(("mids", "statuses", "providers"), statuses), "now": now}


def _sending_sqlite() -> sa.Insert:
    sends = sqlite.insert(send_t)
    return sends.on_conflict_do_update(
        index_elements=["message_id"],
        set_={"status": "sending", "sent_at": sends.excluded.sent_at,
              "status_at": sends.excluded.sent_at},
        where=send_t.c.status == "failed",
    ).returning(send_t.c.message_id)


_SENDING_PG = sa.text(
    "INSERT INTO send (message_id, account_id, debtor_id, channel, occurrence_id, status, "
    "sent_at, to_index) "
    "SELECT v.mid, v.account, v.debtor, v.channel, v.occurrence, 'sending', :now, v.to_index "
    "FROM unnest(CAST(:mids AS text[]), CAST(:accounts AS text[]), CAST(:debtors AS text[]), "
    "CAST(:channels AS text[]), CAST(:occurrences AS bigint[]), CAST(:indexes AS text[])) "
    "AS v(mid, account, debtor, channel, occurrence, to_index) "
    "ON CONFLICT (message_id) DO UPDATE SET status = 'sending', sent_at = excluded.sent_at, "
    "status_at = excluded.sent_at WHERE send.status = 'failed' "
    "RETURNING send.message_id"
).bindparams(sa.bindparam("now", type_=UTCDateTime()))


_PLANNED = account_t.update().where(
    account_t.c.account_id == sa.bindparam("b_id"),
    account_t.c.plan_seq == sa.bindparam("b_seq"),
).values(plan_due_at=sa.bindparam("b_due", type_=UTCDateTime()))
_STAGED = _PLANNED.values(
    stage=sa.bindparam("b_stage", type_=sa.String()),
    stage_entered_at=sa.bindparam("b_entered", type_=UTCDateTime()),
    balance_at_stage_entry=sa.bindparam("b_balance", type_=account_t.c.balance.type))
_PLANNED_PG = sa.text(
    "UPDATE account AS a SET plan_due_at = v.due "
    "FROM unnest(CAST(:ids AS text[]), CAST(:seqs AS bigint[]), "
    "CAST(:dues AS timestamptz[])) AS v(id, seq, due) "
    "WHERE a.account_id = v.id AND a.plan_seq = v.seq")
# Every account of the page gets its due time; those that moved (the second arrays, on a
# given day a few of a page, joined by id) their stage too.
_STAGED_PG = sa.text(
    "UPDATE account AS a SET plan_due_at = v.due, "
    "stage = CASE WHEN m.id IS NULL THEN a.stage ELSE m.stage END, "
    "stage_entered_at = CASE WHEN m.id IS NULL THEN a.stage_entered_at ELSE m.entered END, "
    "balance_at_stage_entry = CASE WHEN m.id IS NULL THEN a.balance_at_stage_entry "
    "ELSE m.balance END "
    "FROM unnest(CAST(:ids AS text[]), CAST(:seqs AS bigint[]), "
    "CAST(:dues AS timestamptz[])) AS v(id, seq, due) "
    "LEFT JOIN unnest(CAST(:moved AS text[]), CAST(:stages AS text[]), "
    "CAST(:entered AS timestamptz[]), CAST(:balances AS numeric[])) "
    "AS m(id, stage, entered, balance) ON m.id = v.id "
    "WHERE a.account_id = v.id AND a.plan_seq = v.seq")


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


def _move_pg_sql(*, attempted: bool) -> str:
    attempts = ", attempts = o.attempts + 1" if attempted else ""
    return (
        "UPDATE occurrence AS o SET state = v.state, "
        "next_attempt_at = coalesce(v.next, o.next_attempt_at), updated_at = :now, "
        f"lease_until = NULL{attempts} "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(:states AS text[]), "
        "CAST(:nexts AS timestamptz[])) AS v(id, state, next) "
        "WHERE o.id = v.id AND o.state = 'sending'"
    )


def _move_pg(*, attempted: bool) -> sa.TextClause:
    return sa.text(_move_pg_sql(attempted=attempted)).bindparams(
        sa.bindparam("now", type_=UTCDateTime()))


_MOVE = _move(attempted=False)
_MOVE_ATTEMPTED = _move(attempted=True)
_MOVE_PG = _move_pg(attempted=False)
_MOVE_PG_ATTEMPTED = _move_pg(attempted=True)

_STILL_SENDING = send_t.c.status == "sending"
_SEND_STATUS = send_t.update().where(send_t.c.message_id == sa.bindparam("b_mid")).values(
    status=sa.case((_STILL_SENDING, sa.bindparam("b_status")), else_=send_t.c.status),
    provider_id=sa.func.coalesce(send_t.c.provider_id, sa.bindparam("b_provider")),
    status_at=sa.case((_STILL_SENDING, sa.bindparam("b_now")), else_=send_t.c.status_at))
_SEND_STATUS_PG_SQL = (
    "UPDATE send AS s SET "
    "status = CASE WHEN s.status = 'sending' THEN v.status ELSE s.status END, "
    "provider_id = coalesce(s.provider_id, v.provider), "
    "status_at = CASE WHEN s.status = 'sending' THEN :now ELSE s.status_at END "
    "FROM unnest(CAST(:mids AS text[]), CAST(:statuses AS text[]), "
    "CAST(:providers AS text[])) AS v(mid, status, provider) "
    "WHERE s.message_id = v.mid"
)
_SEND_STATUS_PG = sa.text(_SEND_STATUS_PG_SQL).bindparams(
    sa.bindparam("now", type_=UTCDateTime()))


def _settled_pg(dialect: Dialect) -> sa.TextClause:
    """``Settler.settled`` on PostgreSQL: the decision rows (each column an array), then
    the occurrences and the sends, as data-modifying ``WITH`` parts of one statement
    (PostgreSQL runs each of them once, whether or not anything reads it)."""
    array_of = {name: dialect.type_compiler_instance.process(decision_t.c[name].type) + "[]"
                for name in _DECISION_COLUMNS}
    columns = ", ".join(_DECISION_COLUMNS)
    arrays = ", ".join(f"CAST(:{param} AS {array_of[name]})"
                       for name, param in zip(_DECISION_COLUMNS, _DECISION_PARAMS, strict=True))
    return sa.text(
        f"WITH decided AS (INSERT INTO decision ({columns}) SELECT * FROM unnest({arrays})), "
        f"moved AS ({_move_pg_sql(attempted=True)}) "
        f"{_SEND_STATUS_PG_SQL}"
    ).bindparams(sa.bindparam("now", type_=UTCDateTime()))
