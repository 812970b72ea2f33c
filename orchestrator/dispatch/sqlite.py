"""The runner on SQLite: one writer, in process.

A lease needs no row locks and a claim no debtor locks: the first write of a
transaction takes the database's single write lock, so no two workers (there is one)
lease or judge together, and nobody plans alongside. Batch writes are one
``executemany`` per kind of row: in process, a statement costs no round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from orchestrator.core.records import DecisionRecord
from orchestrator.dispatch.connector import PLANNED_COLUMNS, Connector, Partition, Statuses
from orchestrator.dispatch.recording import Recorder, Settle
from orchestrator.dispatch.settle import Moved, PlannedAccount, Sending
from orchestrator.store.bulk import BulkInsert
from orchestrator.store.tables import (
    AccountPlan,
    AccountRow,
    OccurrenceRow,
    Send,
    UTCDateTime,
    table_of,
)

__all__ = ["SQLiteConnector"]

account_t = table_of(AccountRow)
account_plan_t = table_of(AccountPlan)
occurrence_t = table_of(OccurrenceRow)
send_t = table_of(Send)


class SQLiteConnector(Connector):
    """The runner's statements on SQLite (see ``orchestrator.dispatch.connector``)."""

    def __init__(self, dialect: sa.Dialect):
        super().__init__(dialect)
        self._plan = BulkInsert(
            occurrence_t,
            PLANNED_COLUMNS,
            dialect,
            unless_exists=("account_id", "step_id", "occurrence_key"),
        )
        self._planned = BulkInsert(
            account_plan_t,
            ("account_id", "plan_due_at", "plan_seq"),
            dialect,
            on_conflict="ON CONFLICT (account_id) DO UPDATE SET plan_due_at = "
            "excluded.plan_due_at WHERE account_plan.plan_seq = excluded.plan_seq",
        )

    def _insert(self, table: sa.Table) -> sqlite.Insert:
        return sqlite.insert(table)

    def plan_occurrences(self, conn: Connection, values: list[dict[str, Any]]) -> int:
        """One ``executemany``, each column's values converted once per distinct value
        (``BulkInsert``), not through Core's per-parameter processing."""
        return self._plan(conn, [tuple(v[c] for c in PLANNED_COLUMNS) for v in values])

    def _by_code_point(self, text: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        return text  # SQLite's default collation (BINARY)

    def _locked(self, pick: sa.Select[Any]) -> sa.Select[Any]:
        return pick  # the lease's update takes the single write lock

    @contextmanager
    def partitions(self, db: Engine, start: int) -> Iterator[Iterator[Partition]]:
        yield iter([Partition(1, None)])  # one worker plans every account

    @contextmanager
    def fold_turn(self, db: Engine) -> Iterator[bool]:
        yield True  # one worker

    def lock_debtors(self, conn: Connection, debtors: Iterable[str]) -> None:
        """Nothing: the claim takes the single write lock first."""

    def lock_budgets(self, conn: Connection) -> None:
        """Nothing: the claim takes the single write lock first."""

    def recorder(self, db: Engine, settle: Settle) -> Recorder:
        return Recorder(settle)

    def sending(self, conn: Connection, sends: Sequence[Sending], now: datetime) -> int:
        if not sends:
            return 0
        return len(
            conn.execute(
                _SENDING,
                [
                    {
                        "message_id": s.message_id,
                        "account_id": s.account_id,
                        "debtor_id": s.debtor_id,
                        "channel": s.channel,
                        "occurrence_id": s.occurrence_id,
                        "status": "sending",
                        "sent_at": now,
                        "status_at": None,
                        "to_index": s.to_index,
                    }
                    for s in sends
                ],
            ).all()
        )

    def settled(
        self,
        conn: Connection,
        records: Sequence[tuple[int, DecisionRecord]],
        moved: Sequence[Moved],
        statuses: Statuses,
        now: datetime,
    ) -> None:
        self.decisions(conn, records)
        self.occurrences(conn, moved, now, attempted=True)
        self.sends(conn, statuses, now)

    def planned(self, conn: Connection, accounts: Sequence[PlannedAccount]) -> None:
        """An ``executemany`` of the accounts' due times (``account_plan``, unless a
        change counted ``plan_seq`` on since they were read), one of the stages of
        those that moved."""
        self._planned(conn, [(p.account_id, p.due, p.plan_seq) for p in accounts])
        moved = [
            {
                "b_id": p.account_id,
                "b_seq": p.plan_seq,
                "b_stage": p.stage.stage,
                "b_entered": p.stage.entered_at,
                "b_balance": p.stage.balance_at_entry,
            }
            for p in accounts
            if p.stage is not None
        ]
        if moved:
            conn.execute(_STAGED, moved)

    def occurrences(
        self, conn: Connection, moved: Sequence[Moved], now: datetime, *, attempted: bool
    ) -> None:
        if moved:
            conn.execute(
                _MOVE_ATTEMPTED if attempted else _MOVE,
                [
                    {"b_id": m.occurrence_id, "b_state": m.state, "b_next": m.next, "b_now": now}
                    for m in moved
                ],
            )

    def sends(self, conn: Connection, statuses: Statuses, now: datetime) -> None:
        if statuses:
            conn.execute(
                _SEND_STATUS,
                [
                    {"b_mid": m, "b_status": s, "b_provider": p, "b_now": now}
                    for m, s, p in statuses
                ],
            )


def _sending() -> sa.Insert:
    sends = sqlite.insert(send_t)
    return sends.on_conflict_do_update(
        index_elements=["message_id"],
        set_={
            "status": "sending",
            "sent_at": sends.excluded.sent_at,
            "status_at": sends.excluded.sent_at,
        },
        where=send_t.c.status == "failed",
    ).returning(send_t.c.message_id)


_SENDING = _sending()

# The stage of an account that moved, unless a change counted its ``plan_seq`` on since
# it was read (its ``account_plan`` row is written first).
_STAGED = (
    account_t.update()
    .where(
        account_t.c.account_id == sa.bindparam("b_id"),
        sa.select(account_plan_t.c.plan_seq)
        .where(account_plan_t.c.account_id == account_t.c.account_id)
        .scalar_subquery()
        == sa.bindparam("b_seq"),
    )
    .values(
        stage=sa.bindparam("b_stage", type_=sa.String()),
        stage_entered_at=sa.bindparam("b_entered", type_=UTCDateTime()),
        balance_at_stage_entry=sa.bindparam("b_balance", type_=account_t.c.balance.type),
    )
)


def _move(*, attempted: bool) -> sa.Update:
    extra: dict[str, Any] = {"attempts": occurrence_t.c.attempts + 1} if attempted else {}
    return (
        occurrence_t.update()
        .where(
            occurrence_t.c.id == sa.bindparam("b_id"),
            occurrence_t.c.state == sa.literal_column("'sending'"),
        )
        .values(
            state=sa.bindparam("b_state"),
            next_attempt_at=sa.func.coalesce(
                sa.bindparam("b_next", type_=UTCDateTime()), occurrence_t.c.next_attempt_at
            ),
            updated_at=sa.bindparam("b_now"),
            lease_until=None,
            **extra,
        )
    )


_MOVE = _move(attempted=False)
_MOVE_ATTEMPTED = _move(attempted=True)

_STILL_SENDING = send_t.c.status == "sending"
_SEND_STATUS = (
    send_t.update()
    .where(send_t.c.message_id == sa.bindparam("b_mid"))
    .values(
        status=sa.case((_STILL_SENDING, sa.bindparam("b_status")), else_=send_t.c.status),
        provider_id=sa.func.coalesce(send_t.c.provider_id, sa.bindparam("b_provider")),
        status_at=sa.case((_STILL_SENDING, sa.bindparam("b_now")), else_=send_t.c.status_at),
    )
)
