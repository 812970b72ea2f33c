"""The runner on PostgreSQL: many workers, each a client across a network.

Workers keep apart by locks: a lease skips the rows another worker is leasing
(``FOR UPDATE SKIP LOCKED``), a claim holds its debtors (transaction-level advisory
locks, so N workers never exceed a cap), and each planning partition (accounts split by
a hash of the debtor id) is planned by one worker at a time (a session-level advisory
lock each; the others take other partitions). Every statement is a round trip, so a batch writes each kind of row in
one statement, the batch's values passed as arrays, each array as one string
(``inlist.pg_array``), and what a sent batch writes after its adapter calls is one
statement in all (``settled``), recorded in a thread while the next batch goes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect, Engine

from orchestrator.core.records import DecisionRecord
from orchestrator.dispatch.connector import (
    DECISION_COLUMNS,
    PLANNED_COLUMNS,
    Connector,
    Partition,
    Statuses,
    decision_row,
)
from orchestrator.dispatch.recording import BackgroundRecorder, Recorder, Settle
from orchestrator.dispatch.settle import Moved, PlannedAccount, Sending
from orchestrator.store.accounts import decision_values
from orchestrator.store.inlist import pg_array
from orchestrator.store.tables import Decision, OccurrenceRow, UTCDateTime, table_of

__all__ = ["PostgresConnector"]

decision_t = table_of(Decision)
occurrence_t = table_of(OccurrenceRow)

_DECISION_PARAMS = tuple(f"d_{name}" for name in DECISION_COLUMNS)  # _settled's


class PostgresConnector(Connector):
    """The runner's statements on PostgreSQL (see ``orchestrator.dispatch.connector``)."""

    def __init__(self, dialect: Dialect):
        super().__init__(dialect)
        self._settled = _settled(dialect)
        self._plan = _plan_statement(dialect)

    def _insert(self, table: sa.Table) -> postgresql.Insert:
        return postgresql.insert(table)

    def _by_code_point(self, text: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        return text.collate("C")

    def _locked(self, pick: sa.Select[Any]) -> sa.Select[Any]:
        return pick.with_for_update(skip_locked=True)

    @contextmanager
    def partitions(self, db: Engine, start: int) -> Iterator[Iterator[Partition]]:
        """Every partition this worker can lock (a session-level advisory lock each, so
        a worker that dies frees its partition with its connection), from ``start`` on;
        one another worker holds is left to it. Accounts are split by a hash of the
        debtor id, so a debtor's accounts are planned by one worker at a time."""
        held: set[int] = set()
        with db.connect() as lock:

            def release(part: int) -> None:
                if part in held:
                    held.discard(part)
                    lock.execute(_PARTITION_UNLOCK, {"p": part})
                    lock.commit()

            def taken() -> Iterator[Partition]:
                for i in range(PARTITIONS):
                    part = (start + i) % PARTITIONS
                    free = lock.execute(_PARTITION_TRY_LOCK, {"p": part}).scalar()
                    lock.commit()  # the session's lock stays; no transaction stays open
                    if free:
                        held.add(part)
                        yield Partition(
                            FIRST_PARTITION + part,
                            PARTITION_OF_ACCOUNT == part,
                            lambda part=part: release(part),  # type: ignore[misc]
                        )

            try:
                yield taken()
            finally:
                for part in sorted(held):
                    release(part)

    @contextmanager
    def fold_turn(self, db: Engine) -> Iterator[bool]:
        with db.connect() as lock:
            mine = bool(lock.execute(_FOLD_TRY_LOCK).scalar())
            lock.commit()
            try:
                yield mine
            finally:
                if mine:
                    lock.execute(_FOLD_UNLOCK)
                    lock.commit()

    def lock_debtors(self, conn: Connection, debtors: Iterable[str]) -> None:
        """Transaction-level advisory locks on these debtors, taken in one statement in
        sorted order, so two workers never wait on each other in a cycle."""
        conn.execute(_DEBTOR_LOCKS, {"b_debtors": pg_array(sorted(debtors))})

    def lock_budgets(self, conn: Connection) -> None:
        """One transaction-level advisory lock for every budget, taken before the
        debtors' (so always in the same order)."""
        conn.execute(_BUDGET_LOCK)

    def recorder(self, db: Engine, settle: Settle) -> Recorder:
        return BackgroundRecorder(db, settle)

    def sending(self, conn: Connection, sends: Sequence[Sending], now: datetime) -> int:
        if not sends:
            return 0
        return len(
            conn.execute(
                _SENDING,
                {
                    **_arrays(
                        ("mids", "accounts", "debtors", "channels", "occurrences", "indexes"),
                        [
                            (
                                s.message_id,
                                s.account_id,
                                s.debtor_id,
                                s.channel,
                                s.occurrence_id,
                                s.to_index,
                            )
                            for s in sends
                        ],
                    ),
                    "now": now,
                },
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
        """One statement, so one round trip where there were three and, on a connection
        in autocommit, its own transaction: a daemon's recorder thread waits for the
        interpreter lock after every round trip, and waited more than the database
        worked."""
        if not (records or moved or statuses):
            return
        params = _arrays(
            _DECISION_PARAMS,
            [decision_row(decision_values(r, occurrence_id=i)) for i, r in records],
        )
        params.update(_moved_params(moved, now))
        params.update(_status_params(statuses, now))
        conn.execute(self._settled, params)

    def plan_occurrences(self, conn: Connection, values: list[dict[str, Any]]) -> int:
        """One statement of short text whatever the number of rows: each column one
        array. (An ``executemany`` of many ``VALUES`` rows is a statement of 100 kB that
        the driver parses again at every page: it cost five times the insert.)"""
        if not values:
            return 0
        params = {name: pg_array([v[name] for v in values]) for name in PLANNED_COLUMNS}
        return conn.execute(self._plan, params).rowcount

    def planned(self, conn: Connection, accounts: Sequence[PlannedAccount]) -> None:
        """One statement for the page's due times (``account_plan``), one for the
        stages of those that moved."""
        if not accounts:
            return
        conn.execute(
            _PLANNED,
            _arrays(("ids", "seqs", "dues"), [(p.account_id, p.plan_seq, p.due) for p in accounts]),
        )
        moved = [
            (p.account_id, p.plan_seq, p.stage.stage, p.stage.entered_at, p.stage.balance_at_entry)
            for p in accounts
            if p.stage is not None
        ]
        if moved:
            conn.execute(
                _STAGED, _arrays(("moved", "mseqs", "stages", "entered", "balances"), moved)
            )

    def occurrences(
        self, conn: Connection, moved: Sequence[Moved], now: datetime, *, attempted: bool
    ) -> None:
        if moved:
            conn.execute(_MOVE_ATTEMPTED if attempted else _MOVE, _moved_params(moved, now))

    def sends(self, conn: Connection, statuses: Statuses, now: datetime) -> None:
        if statuses:
            conn.execute(_SEND_STATUS, _status_params(statuses, now))


def _arrays(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Rows of values as one array parameter per column (``inlist.pg_array``), named
    ``names`` in order: what the statements here ``unnest``."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return {name: pg_array(column) for name, column in zip(names, columns, strict=True)}


def _moved_params(moved: Sequence[Moved], now: datetime) -> dict[str, Any]:
    return {
        **_arrays(("ids", "states", "nexts"), [(m.occurrence_id, m.state, m.next) for m in moved]),
        "now": now,
    }


def _status_params(statuses: Statuses, now: datetime) -> dict[str, Any]:
    return {**_arrays(("mids", "statuses", "providers"), statuses), "now": now}


# Two 32-bit keys: a lock space apart from the debtors' 64-bit keys.
_BUDGET_LOCK = sa.select(sa.func.pg_advisory_xact_lock(0x6F7574, 2))
_FOLD_TRY_LOCK = sa.select(sa.func.pg_try_advisory_lock(0x6F7574, 1))
_FOLD_UNLOCK = sa.select(sa.func.pg_advisory_unlock(0x6F7574, 1))
# One lock per planning partition, in a key space of their own (0x6F7575).
_PARTITION_TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(7304565, CAST(:p AS integer))")
_PARTITION_UNLOCK = sa.text("SELECT pg_advisory_unlock(7304565, CAST(:p AS integer))")
# How many partitions the accounts are planned in, and which an account is in: the text
# of migration 0018's index, so the planner's pages read it (the literal 64 included).
PARTITIONS = 64
FIRST_PARTITION = 100  # planner_state ids 100..163 (1 is the single partition of SQLite)
PARTITION_OF_ACCOUNT: sa.ColumnElement[int] = sa.literal_column(
    "((hashtext(account.debtor_id) & 2147483647) % 64)", type_=sa.Integer
)
# Every debtor of a batch in one statement, in the order given: a function scan returns
# the array's elements in order (WITH ORDINALITY makes that explicit).
_DEBTOR_LOCKS = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended(t.debtor, 0)) "
    "FROM unnest(CAST(:b_debtors AS text[])) WITH ORDINALITY AS t(debtor, n) ORDER BY t.n"
)

_SENDING = sa.text(
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

# Each account's due time, unless a change counted its ``plan_seq`` on since it was read
# (the check runs on the row as it stands when the upsert takes it: a change committed
# meanwhile wins). An account never planned gets its row.
_PLANNED = sa.text(
    "INSERT INTO account_plan (account_id, plan_due_at, plan_seq) "
    "SELECT v.id, v.due, v.seq FROM unnest(CAST(:ids AS text[]), CAST(:seqs AS bigint[]), "
    "CAST(:dues AS timestamptz[])) AS v(id, seq, due) "
    "ON CONFLICT (account_id) DO UPDATE SET plan_due_at = excluded.plan_due_at "
    "WHERE account_plan.plan_seq = excluded.plan_seq"
)
# The stages of the accounts that moved (on a given day a few of a page), after their
# due times: unless a change counted ``plan_seq`` on since they were read.
_STAGED = sa.text(
    "UPDATE account AS a SET stage = m.stage, stage_entered_at = m.entered, "
    "balance_at_stage_entry = m.balance "
    "FROM unnest(CAST(:moved AS text[]), CAST(:mseqs AS bigint[]), CAST(:stages AS text[]), "
    "CAST(:entered AS timestamptz[]), CAST(:balances AS numeric[])) "
    "AS m(id, seq, stage, entered, balance) "
    "JOIN account_plan AS p ON p.account_id = m.id AND p.plan_seq = m.seq "
    "WHERE a.account_id = m.id"
)


def _move_sql(*, attempted: bool) -> str:
    attempts = ", attempts = o.attempts + 1" if attempted else ""
    return (
        "UPDATE occurrence AS o SET state = v.state, "
        "next_attempt_at = coalesce(v.next, o.next_attempt_at), updated_at = :now, "
        f"lease_until = NULL{attempts} "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(:states AS text[]), "
        "CAST(:nexts AS timestamptz[])) AS v(id, state, next) "
        "WHERE o.id = v.id AND o.state = 'sending'"
    )


def _move(*, attempted: bool) -> sa.TextClause:
    return sa.text(_move_sql(attempted=attempted)).bindparams(
        sa.bindparam("now", type_=UTCDateTime())
    )


_MOVE = _move(attempted=False)
_MOVE_ATTEMPTED = _move(attempted=True)

_SEND_STATUS_SQL = (
    "UPDATE send AS s SET "
    "status = CASE WHEN s.status = 'sending' THEN v.status ELSE s.status END, "
    "provider_id = coalesce(s.provider_id, v.provider), "
    "status_at = CASE WHEN s.status = 'sending' THEN :now ELSE s.status_at END "
    "FROM unnest(CAST(:mids AS text[]), CAST(:statuses AS text[]), "
    "CAST(:providers AS text[])) AS v(mid, status, provider) "
    "WHERE s.message_id = v.mid"
)
_SEND_STATUS = sa.text(_SEND_STATUS_SQL).bindparams(sa.bindparam("now", type_=UTCDateTime()))


def _plan_statement(dialect: Dialect) -> sa.TextClause:
    """``plan_occurrences``'s statement: the rows as one array per column, those whose
    key is planned already left alone."""
    columns = ", ".join(PLANNED_COLUMNS)
    arrays = ", ".join(
        f"CAST(:{name} AS {dialect.type_compiler_instance.process(occurrence_t.c[name].type)}[])"
        for name in PLANNED_COLUMNS
    )
    return sa.text(
        f"INSERT INTO occurrence ({columns}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (account_id, step_id, occurrence_key) DO NOTHING"
    )


def _settled(dialect: Dialect) -> sa.TextClause:
    """``settled``'s statement: the decision rows (each column an array), then the
    occurrences and the sends, as data-modifying ``WITH`` parts of one statement
    (PostgreSQL runs each of them once, whether or not anything reads it)."""
    array_of = {
        name: dialect.type_compiler_instance.process(decision_t.c[name].type) + "[]"
        for name in DECISION_COLUMNS
    }
    columns = ", ".join(DECISION_COLUMNS)
    arrays = ", ".join(
        f"CAST(:{param} AS {array_of[name]})"
        for name, param in zip(DECISION_COLUMNS, _DECISION_PARAMS, strict=True)
    )
    return sa.text(
        f"WITH decided AS (INSERT INTO decision ({columns}) SELECT * FROM unnest({arrays})), "
        f"moved AS ({_move_sql(attempted=True)}) "
        f"{_SEND_STATUS_SQL}"
    ).bindparams(sa.bindparam("now", type_=UTCDateTime()))
