"""What the runner does differently on each database, behind one class per database.

PostgreSQL serves many workers at once, each a client across a network; SQLite one
writer in process. So the same work takes other statements and other safeguards on
each (as procrastinate's connectors, one class per database over one base):

- leasing due occurrences: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers
  never lease the same row; SQLite has one writer at a time;
- the turn of due occurrences: text compared by code point, as Python compares it
  (PostgreSQL's "C" collation; SQLite's default);
- locks: on PostgreSQL one planner at a time and a debtor's sends judged by one worker
  at a time (advisory locks); on SQLite the claim takes the single write lock first;
- batch writes: on PostgreSQL one statement per kind of row and batch, each column
  passed as one array (``inlist.pg_array``), and a sent batch's record one statement in
  all; on SQLite, which runs in process, one ``executemany`` per kind;
- recording sent batches: on PostgreSQL in a thread while the next batch goes out; on
  SQLite on the dispatcher's connection (``orchestrator.dispatch.recording``).

The runner picks the connector once, from its engine's dialect
(``orchestrator.dispatch.runner.connector_for``).
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine, Row

from orchestrator.core.records import DecisionRecord
from orchestrator.dispatch.recording import Recorder, Settle
from orchestrator.dispatch.settle import Moved, PlannedAccount, Sending
from orchestrator.store.accounts import decision_values
from orchestrator.store.bulk import BulkInsert
from orchestrator.store.tables import AccountRow, Decision, OccurrenceRow, UTCDateTime, table_of

__all__ = ["DUE", "PLANNED_COLUMNS", "Connector", "Statuses", "state_in"]

account_t = table_of(AccountRow)
decision_t = table_of(Decision)
occurrence_t = table_of(OccurrenceRow)

DUE = ("pending", "deferred")

DECISION_COLUMNS = tuple(c.name for c in decision_t.c if c.name != "id")
# What planning writes of an occurrence (``Planning._plan_account``'s keys).
PLANNED_COLUMNS = (
    "account_id",
    "step_id",
    "occurrence_key",
    "planned_at",
    "expires_at",
    "stage",
    "channel",
    "kind",
    "segment",
    "experiment",
    "variant",
    "priority",
    "state",
    "next_attempt_at",
    "attempts",
    "created_at",
    "updated_at",
)
decision_row = operator.itemgetter(*DECISION_COLUMNS)

# Each ``(message id, status, provider id)`` of a sent batch's send rows.
Statuses = Sequence[tuple[str, str, str | None]]


def state_in(states: Sequence[str]) -> sa.ColumnElement[bool]:
    """``state IN (...)`` with inline constants, usable with executemany."""
    return sa.or_(*(occurrence_t.c.state == sa.literal_column(f"'{s}'") for s in states))


@dataclass
class Partition:
    """A planning partition this worker holds: its number (the ``planner_state`` row of
    its configuration digest) and a condition on the account table selecting its
    accounts (``None``: every account). Held until ``release`` (or until the block of
    ``Connector.partitions`` that gave it ends)."""

    key: int
    accounts: sa.ColumnElement[bool] | None
    release: Callable[[], None] = lambda: None  # (one worker holds every account)


class Connector(ABC):
    """The runner's statements and safeguards on one database (see the module)."""

    def __init__(self, dialect: Dialect):
        self._decisions = BulkInsert(decision_t, DECISION_COLUMNS, dialect)
        # Occurrences are planned under their unique key: planning twice plans once.
        self.plan_insert = (
            self._insert(occurrence_t)
            .on_conflict_do_nothing(index_elements=["account_id", "step_id", "occurrence_key"])
            .returning(occurrence_t.c.id)
        )
        self._lease = self._lease_statement()

    def plan_occurrences(self, conn: Connection, values: list[dict[str, Any]]) -> int:
        """Insert planned occurrences (``PLANNED_COLUMNS`` each), those already planned
        left alone (their unique key); how many were new. One statement with a
        parameter list (not ``.values(rows)``, which is compiled again for every number
        of rows: 40% of planning went to that)."""
        return len(conn.execute(self.plan_insert, values).all()) if values else 0

    # --- what each database does its own way -------------------------------------------

    @abstractmethod
    def _insert(self, table: sa.Table) -> Any:
        """The dialect's ``INSERT`` (with its ``ON CONFLICT`` clauses)."""

    @abstractmethod
    def _by_code_point(self, text: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        """``text`` compared by code point, as Python compares it."""

    @abstractmethod
    def _locked(self, pick: sa.Select[Any]) -> sa.Select[Any]:
        """The due rows a lease takes, kept from other workers."""

    @abstractmethod
    def partitions(self, db: Engine, start: int) -> AbstractContextManager[Iterator[Partition]]:
        """The planning partitions this worker takes, one at a time (the next is taken
        when the caller asks for it), each held until the caller releases it, so that
        the caller can plan the next while the last one's pages are still being written;
        those still held when the block ends are released then. ``start`` spreads
        workers over different partitions."""

    @abstractmethod
    def fold_turn(self, db: Engine) -> AbstractContextManager[bool]:
        """Whether this worker folds what ``at: best`` learned this round (``True``
        while it does); another worker folding at the time: ``False``, skip it."""

    @abstractmethod
    def lock_debtors(self, conn: Connection, debtors: Iterable[str]) -> None:
        """Hold these debtors for the claim's transaction: their sends are judged by one
        worker at a time."""

    @abstractmethod
    def lock_budgets(self, conn: Connection) -> None:
        """Hold the policy's budgets for the claim's transaction (before any debtor):
        what is spent of them is counted by one claim at a time."""

    @abstractmethod
    def recorder(self, db: Engine, settle: Settle) -> Recorder:
        """What records the sent batches of one dispatch run."""

    @abstractmethod
    def sending(self, conn: Connection, sends: Sequence[Sending], now: datetime) -> int:
        """A send row ``sending`` for each, or the same row again after a transient
        failure (a retry); returns how many were written, which is fewer than given when
        one of them already has a send row that did not fail (never send that again)."""

    @abstractmethod
    def settled(
        self,
        conn: Connection,
        records: Sequence[tuple[int, DecisionRecord]],
        moved: Sequence[Moved],
        statuses: Statuses,
        now: datetime,
    ) -> None:
        """A sent batch: ``decisions``, ``occurrences`` (attempted) and ``sends``
        together."""

    @abstractmethod
    def planned(self, conn: Connection, accounts: Sequence[PlannedAccount]) -> None:
        """Each account is planned until its ``due``, and in the stage it moved to,
        unless its data or facts changed since it was read (``plan_seq`` moved on: it
        stays due, its stage is written at its next planning). The stage rides on the
        update that was there anyway (no statement more per page) and is written only
        for the accounts that moved (most days, none of a page)."""

    @abstractmethod
    def occurrences(
        self, conn: Connection, moved: Sequence[Moved], now: datetime, *, attempted: bool
    ) -> None:
        """Move occurrences on from ``sending``; ``attempted``: the adapter was called (one
        more attempt against the retry policy; a deferral by the gate is not one)."""

    @abstractmethod
    def sends(self, conn: Connection, statuses: Statuses, now: datetime) -> None:
        """Each ``(message id, status, provider id)``: the send's status, unless a status
        callback already moved it on from ``sending`` (a fast delivery report, a call
        answered: that status stands), and its provider id if it had none."""

    # --- the same on every database ----------------------------------------------------

    def decisions(
        self, conn: Connection, records: Sequence[tuple[int | None, DecisionRecord]]
    ) -> None:
        """A decision row for each ``(occurrence id, record)`` (``COPY`` on PostgreSQL:
        ``BulkInsert``)."""
        if records:
            self._decisions(
                conn, [decision_row(decision_values(r, occurrence_id=i)) for i, r in records]
            )

    def lease(
        self, conn: Connection, *, now: datetime, until: datetime, worker: str, limit: int
    ) -> list[Row[Any]]:
        """Lease up to ``limit`` due occurrences to ``worker`` until ``until``, each with
        its account's ``debtor_id``, in one statement (the caller's transaction)."""
        return list(
            conn.execute(
                self._lease, {"b_now": now, "b_until": until, "b_worker": worker, "b_limit": limit}
            ).all()
        )

    def _due_order(self) -> list[sa.ColumnElement[Any]]:
        """The order in which due occurrences take their turn: by due time, then
        ``simulate.due_order`` (the policy's priority, planned first, then account, step,
        key), text compared by code point as Python compares it."""
        c = occurrence_t.c
        return [
            c.next_attempt_at,
            self._by_code_point(c.priority),
            c.planned_at,
            *map(self._by_code_point, (c.account_id, c.step_id, c.occurrence_key)),
        ]

    def _lease_statement(self) -> sa.Update:
        """Due occurrences not leased (or whose lease lapsed), in their turn
        (``_due_order``), leased to one worker; each comes back with its account's
        debtor."""
        now = sa.bindparam("b_now", type_=UTCDateTime())
        pick = self._locked(
            sa.select(occurrence_t.c.id)
            .where(
                state_in(DUE),
                occurrence_t.c.next_attempt_at <= now,
                sa.or_(occurrence_t.c.lease_until.is_(None), occurrence_t.c.lease_until < now),
            )
            .order_by(*self._due_order())
            .limit(sa.bindparam("b_limit", type_=sa.Integer()))
        )
        debtor = (
            sa.select(account_t.c.debtor_id)
            .where(account_t.c.account_id == occurrence_t.c.account_id)
            .scalar_subquery()
            .label("debtor_id")
        )
        return (
            occurrence_t.update()
            .where(occurrence_t.c.id.in_(pick.scalar_subquery()))
            .values(
                lease_until=sa.bindparam("b_until", type_=UTCDateTime()),
                claimed_by=sa.bindparam("b_worker"),
            )
            .returning(*occurrence_t.c, debtor)
        )
