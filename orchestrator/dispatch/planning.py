"""Planning rounds: the occurrences each account has due, inserted once.

Planning inserts occurrences under the unique key (account, step, occurrence key) with
"insert, ignore conflicts", so planning twice, or by two workers, plans once. An
account's state is rebuilt from the facts in the tables (``orchestrator.store.replay``),
the way ``simulate`` builds it, so nothing derived is stored twice; what planning does
write back is what ``account show`` and reports tell without replaying: when each
account is due to be planned again, the stage it is in, and (for accounts just changed)
the states of its promises and payment plans.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from orchestrator.config.models import Config
from orchestrator.core.crypto import DataCipher
from orchestrator.core.hours import local_day_start
from orchestrator.core.planner import Occurrence as Planned
from orchestrator.core.planner import StageMark, plan_day, plan_fire, stage_mark
from orchestrator.core.records import DecisionRecord
from orchestrator.core.validation import plan_notice
from orchestrator.dispatch.baddata import is_bad_data, note, planning_failed, replay_accounts
from orchestrator.dispatch.connector import Connector, Partition
from orchestrator.dispatch.decider import Decider
from orchestrator.dispatch.gcpause import collector_held
from orchestrator.dispatch.pagewriter import PageWriter
from orchestrator.dispatch.settle import PlannedAccount
from orchestrator.store.besttime import fold
from orchestrator.store.derived import write_plan_states, write_promise_states
from orchestrator.store.inlist import one_of
from orchestrator.store.replay import Replayed, next_facts
from orchestrator.store.tables import (
    AccountPlan,
    AccountRow,
    PlannerState,
    UTCDateTime,
    table_of,
)

__all__ = ["BAD_DATA_RETRY", "Planning", "planning_digest"]

account_t = table_of(AccountRow)
account_plan_t = table_of(AccountPlan)
planner_t = table_of(PlannerState)


# The accounts as planning reads them: each with its ``plan_seq`` (0 for an account never
# planned, which has no ``account_plan`` row). Read per account by its key (a scalar
# subquery), not joined: a join lets PostgreSQL hash the whole ``account_plan`` table
# for every page, a cost that grows with the portfolio at each of its pages.
def _plan_of(column: sa.Column[Any]) -> sa.ScalarSelect[Any]:
    return (
        sa.select(column)
        .where(account_plan_t.c.account_id == account_t.c.account_id)
        .scalar_subquery()
    )


_ACCOUNTS = sa.select(
    account_t, sa.func.coalesce(_plan_of(account_plan_t.c.plan_seq), 0).label("plan_seq")
)
_BY_ID = _ACCOUNTS.where(one_of(account_t.c.account_id, "ids")).order_by(account_t.c.account_id)
_ID_PAGE = 50_000  # account ids found due at a time

# Due: planned again at an instant now past, or never planned (NULL, or no row).
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)
_DUE_AT = sa.func.coalesce(
    _plan_of(account_plan_t.c.plan_due_at), sa.literal(_NEVER, UTCDateTime())
)

# An account that could not be planned (bad data) is tried again this much later, unless
# its data or facts change first: recorded once a day, not at every round.
BAD_DATA_RETRY = timedelta(days=1)


# A partition's accounts to plan: whether all of them are (``every``), the query that
# finds their ids, and the first ids it found.
_Due = tuple[bool, sa.Select[Any], list[str]]


@dataclass
class _Page:
    """A page of accounts planned, to be written back in one transaction."""

    values: list[dict[str, Any]]  # the occurrences
    accounts: list[PlannedAccount]  # when each is due again, and its stage if it moved
    unplanned: list[DecisionRecord]  # those that could not be planned (bad data)


class Planning:
    """Plans the accounts of one database under one configuration."""

    def __init__(
        self,
        db: Engine,
        connector: Connector,
        decider: Decider,
        cipher: DataCipher,
        *,
        not_before: datetime | None,
        default_zone: ZoneInfo,
    ):
        self.db = db
        self.connector = connector
        self.decider = decider
        self.cipher = cipher
        # Go-live instant: occurrences planned before it are not planned at all (as
        # ``simulate`` plans nothing before its start), so a first start does not fire
        # the morning's backlog late.
        self.not_before = not_before
        # Where a decision of bad data tells local time: the account's zones may be what
        # could not be worked out.
        self.default_zone = default_zone
        # On PostgreSQL a round's pages are written by a thread of their own
        # (``pagewriter``), while the server works; on SQLite the writes are this
        # process's own work, and a second thread only made the round slower
        # (100,000 accounts: 12 to 13 s instead of 9.5 to 11 s).
        self._threaded = db.url.get_backend_name() == "postgresql"

    def plan(self, now: datetime, *, digest: str, page: int, start: int = 0) -> int | None:
        """A planning round, ``page`` accounts at a time: how many occurrences were new,
        or ``None`` when other workers held every partition (``Connector.partitions``:
        on PostgreSQL the accounts are split in partitions by debtor, each planned by one
        worker at a time; this one takes those free, from ``start`` on). Under a planning
        configuration (``digest``) other than the one a partition was last planned
        under, every account of the partition is planned again."""
        config = self.decider.config
        if config.uses_best_time:  # count the sends ``at: best`` learns from, first
            with self.connector.fold_turn(self.db) as mine:
                if mine:
                    with self.db.begin() as conn:
                        fold(conn, now, config.policy.best_time)
        taken = False
        with self.connector.partitions(self.db, start) as partitions:
            # The next partition is taken, and its due accounts found, while this one is
            # planned (a thread of its own: the server's work, little of Python's).
            with ThreadPoolExecutor(1, thread_name_prefix="planner-ids") as finder:
                with PageWriter(self._write_page, threaded=self._threaded) as writer:
                    ahead = self._ahead(finder, next(partitions, None), now, digest)
                    behind: tuple[Partition, bool, int] | None = None
                    while ahead is not None:
                        taken = True
                        partition, found = ahead
                        ahead = self._ahead(finder, next(partitions, None), now, digest)
                        every, query, first = found.result()
                        self._plan_partition(writer, now, page, query, first)
                        # The last partition's pages were written while this one was
                        # planned: once they are, it is done and let go.
                        if behind is not None:
                            self._done(writer, now, digest, *behind)
                        behind = (partition, every, writer.put_count)
                    if behind is not None:
                        self._done(writer, now, digest, *behind)
        return writer.total if taken else None

    def _ahead(
        self, finder: ThreadPoolExecutor, partition: Partition | None, now: datetime, digest: str
    ) -> tuple[Partition, Future[_Due]] | None:
        """A partition taken, and the finding of its due accounts under way."""
        if partition is None:
            return None
        return partition, finder.submit(self._find_due, partition, now, digest)

    def _find_due(self, partition: Partition, now: datetime, digest: str) -> _Due:
        """Whether every account of the partition is to be planned (it was last planned
        under another configuration), the query of its ids, and the first ones."""
        with self.db.connect() as conn:  # one connection for both reads
            stored = conn.execute(
                sa.select(planner_t.c.config_digest).where(planner_t.c.id == partition.key)
            ).scalar()
            every = stored != digest
            query = sa.select(account_t.c.account_id).order_by(account_t.c.account_id)
            query = query.limit(_ID_PAGE)
            if partition.accounts is not None:
                query = query.where(partition.accounts)
            if not every:
                query = query.where(_DUE_AT <= now)
            return every, query, _ids_after(conn, query, "")

    def _plan_partition(
        self,
        writer: PageWriter[_Page],
        now: datetime,
        page: int,
        query: sa.Select[Any],
        first: list[str],
    ) -> None:
        """Plan one partition's accounts due (``query`` finds their ids, ``first`` are the
        first found), ``page`` at a time, each page handed to the writer."""
        for ids in self._due_ids(query, page, first):
            with collector_held():  # a page's objects are freed when it is done
                with self.db.connect() as conn:
                    rows = conn.execute(_BY_ID, {"ids": ids}).all()
                    if rows:  # (an account cannot go: none is ever deleted)
                        writer.put(self._planned_page(conn, list(rows), now))

    def _done(
        self,
        writer: PageWriter[_Page],
        now: datetime,
        digest: str,
        partition: Partition,
        every: bool,
        pages: int,
    ) -> None:
        """A partition planned: once its first ``pages`` are written, the configuration
        it was planned under is recorded (when every account was planned) and it is let
        go."""
        writer.wait(pages)
        if every:  # from now on, the accounts' plan_due_at hold under this configuration
            with self.db.begin() as conn:
                conn.execute(planner_t.delete().where(planner_t.c.id == partition.key))
                conn.execute(
                    planner_t.insert().values(
                        id=partition.key, config_digest=digest, updated_at=now
                    )
                )
        partition.release()

    def plan_accounts(self, account_ids: Iterable[str], now: datetime) -> int:
        """Plan just these accounts now (after a payment, a promise, an event arrived), and
        write back the promise states their facts imply (kept, broken)."""
        ids = sorted(set(account_ids))
        if not ids:
            return 0
        with self.db.connect() as conn:
            rows = conn.execute(_ACCOUNTS.where(account_t.c.account_id.in_(ids))).all()
        return self._plan_rows(list(rows), now, sync_promises=True)

    def _plan_rows(
        self, rows: list[Row[Any]], now: datetime, *, sync_promises: bool = False
    ) -> int:
        """Plan these accounts, read and written in one transaction."""
        with self.db.begin() as conn:
            page = self._planned_page(conn, rows, now, sync_promises=sync_promises)
            return self._write(conn, page)

    def _planned_page(
        self, conn: Connection, rows: list[Row[Any]], now: datetime, *, sync_promises: bool = False
    ) -> _Page:
        """Plan a page of accounts: what to write back. An account whose data cannot be
        replayed or planned is recorded ``failed`` (``bad_data``) and tried again a day
        later; the others are planned as if it were not there."""
        # Planning reads no personal field (zones come from stored columns): none is
        # decrypted.
        replayed, bad = replay_accounts(
            conn, rows, now, self.cipher, self.decider.rules, sealed=True
        )
        later = next_facts(conn, [r.account_id for r in rows], now)
        values, due, marks = self._plan_each(replayed, later, bad, now)
        if sync_promises:
            for account_id, rep in replayed.items():
                if account_id not in bad:
                    write_promise_states(conn, account_id, rep.state, now)
                    write_plan_states(conn, account_id, rep.state, now)
        accounts = [
            PlannedAccount(
                r.account_id, r.plan_seq, due[r.account_id], _moved_to(r, marks.get(r.account_id))
            )
            for r in rows
        ]
        return _Page(values, accounts, self._unplanned(rows, bad, now))

    def _write_page(self, page: _Page) -> int:
        with collector_held(), self.db.begin() as conn:
            return self._write(conn, page)

    def _write(self, conn: Connection, page: _Page) -> int:
        """Write a planned page back: the accounts' due times and stages, the decisions
        of those that could not be planned, and the occurrences (how many were new)."""
        self.connector.planned(conn, page.accounts)
        if page.unplanned:
            self.connector.decisions(conn, [(None, record) for record in page.unplanned])
        return self.connector.plan_occurrences(conn, page.values)

    def _plan_each(
        self,
        replayed: dict[str, Replayed],
        later: dict[str, datetime],
        bad: dict[str, Exception],
        now: datetime,
    ) -> tuple[list[dict[str, Any]], dict[str, datetime], dict[str, StageMark | None]]:
        """The occurrences to insert, when each account is planned again, and the stage
        each is in (``planner.stage_mark``). An account whose planning raises joins
        ``bad``: nothing of it is planned, and it is due again in ``BAD_DATA_RETRY`` (not
        at every round), or at once when its data changes."""
        values: list[dict[str, Any]] = []
        due: dict[str, datetime] = {}
        marks: dict[str, StageMark | None] = {}
        days: dict[ZoneInfo, tuple[date, datetime]] = {}  # a page's accounts share few zones
        for account_id, rep in replayed.items():
            try:
                zone = rep.rules.zones.primary
                found = days.get(zone)
                if found is None:
                    found = days[zone] = _local_day(now, zone)
                day, tomorrow = found
                planned = list(self._plan_account(rep, now, day))
                due[account_id] = _plan_due(rep, later.get(account_id), tomorrow)
                marks[account_id] = stage_mark(rep.state, rep.rules, now)
            except Exception as exc:
                if not is_bad_data(exc):
                    raise
                bad[account_id] = exc
                continue
            values.extend(planned)
        for account_id in bad:
            due[account_id] = now + BAD_DATA_RETRY
            marks.pop(account_id, None)
        return values, due, marks

    def _unplanned(
        self, rows: Sequence[Row[Any]], bad: dict[str, Exception], now: datetime
    ) -> list[DecisionRecord]:
        """A ``failed`` decision (``bad_data``) for each account of the page that could not
        be planned, and its log line."""
        if not bad:
            return []
        debtors = {r.account_id: r.debtor_id for r in rows}
        for account_id in sorted(bad):
            note(account_id, bad[account_id], "plan")
        return [planning_failed(a, debtors[a], now, self.default_zone) for a in sorted(bad)]

    def _due_ids(self, query: sa.Select[Any], page: int, first: list[str]) -> Iterator[list[str]]:
        """Pages of the ids of the accounts to plan, by account id, ``page`` at a time,
        ``first`` those found first. ``query`` finds them ``_ID_PAGE`` at a time: a query
        that found the due accounts a page at a time scanned the rest of the partition
        again for every page."""
        found = first
        while True:
            for at in range(0, len(found), page):
                yield found[at : at + page]
            if len(found) < _ID_PAGE:
                return
            with self.db.connect() as conn:
                found = _ids_after(conn, query, found[-1])

    def _plan_account(self, rep: Replayed, now: datetime, day: date) -> Iterator[dict[str, Any]]:
        """The occurrences of an account on its local ``day`` (primary zone) at ``now``."""
        state, rules = rep.state, rep.rules
        occs: list[Planned] = []
        # Closed accounts are planned too, as in ``simulate``: their steps are recorded as
        # suppressed (paid), so "why no reminder?" always has an answer.
        notice = plan_notice(state, rules, day, self.not_before)  # until it has gone
        if notice is not None:
            occs.append(notice)
        occs.extend(plan_day(state, rules, day))
        for fire in rep.fires:
            if fire.time <= now:
                occs.extend(plan_fire(state, rules, fire))
        for occ in occs:
            if occ.expires_at <= now:
                continue  # already lapsed when we learned of it: nothing to decide
            if self.not_before is not None and occ.planned_at < self.not_before:
                continue
            yield {
                "account_id": occ.account_id,
                "step_id": occ.step_id,
                "occurrence_key": occ.key,
                "planned_at": occ.planned_at,
                "expires_at": occ.expires_at,
                "stage": occ.stage,
                "channel": occ.channel,
                "kind": str(occ.kind),
                "segment": occ.segment,
                "experiment": occ.experiment,
                "variant": occ.variant,
                "priority": occ.priority,
                "state": "pending",
                "next_attempt_at": occ.planned_at,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }


def planning_digest(config: Config, not_before: datetime | None) -> str:
    """What planning depends on besides the accounts and their facts: the cadences, the
    policy (zones, grace periods), the creditors (their policy profiles) and go-live."""
    text = config.model_dump_json(include={"cadences", "policy", "creditors"})
    return hashlib.sha256(f"{text}\x1f{not_before}".encode()).hexdigest()[:32]


def _ids_after(conn: Connection, query: sa.Select[Any], after: str) -> list[str]:
    """The ids ``query`` finds after ``after`` (by account id)."""
    return list(conn.execute(query.where(account_t.c.account_id > after)).scalars())


def _local_day(now: datetime, zone: ZoneInfo) -> tuple[date, datetime]:
    """The local date in ``zone`` at ``now``, and the first instant of the next one."""
    day = now.astimezone(zone).date()
    return day, local_day_start(day + timedelta(days=1), zone)


def _plan_due(rep: Replayed, next_fact: datetime | None, tomorrow: datetime) -> datetime:
    """When this account's plan can next change: its next local day (``tomorrow``, the
    start of the next in its primary zone), its next promise or instalment deadline, or
    its next dated fact, whichever comes first."""
    due = tomorrow
    if rep.next_deadline is not None and rep.next_deadline < due:
        due = rep.next_deadline
    if next_fact is not None and next_fact < due:
        due = next_fact
    return due


def _moved_to(row: Row[Any], mark: StageMark | None) -> StageMark | None:
    """The stage planning writes back to the account (``planner.stage_mark``), if it
    moved; ``None`` leaves the stored one."""
    return mark if mark is not None and _moved_stage(row, mark) else None


def _moved_stage(row: Row[Any], mark: StageMark) -> bool:
    """Whether the stored stage is not ``mark``'s. The same stage entered the same day
    keeps the balance stored at entry: a later import may have changed the balance
    (fees added), not what it was then."""
    if mark.stage != row.stage or mark.entered_at != row.stage_entered_at:
        return True
    return mark.stage is not None and row.balance_at_stage_entry is None
