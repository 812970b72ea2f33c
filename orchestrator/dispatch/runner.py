"""The daemon's work on the database: one tick plans due occurrences, then dispatches them.

The account state the gate needs is rebuilt from the facts in the tables
(``orchestrator.store.replay``), the way ``simulate`` builds it, so nothing derived is stored
twice. ``Runner`` puts together the parts, each in a module of its own:

- ``planning``: planning rounds, each occurrence inserted once under its unique key;
- ``claiming``: a page of due occurrences leased, then a batch at a time claimed under
  its debtors' locks, judged by the gate ``simulate`` uses and rendered, and recorded
  ``sending`` (with what does not go out) *before* any adapter is called;
- ``sending``: each message handed to its adapter, paced and retried, and the batch's
  outcome recorded (``recording``: on PostgreSQL while the next batch goes out);
- ``recovery``: what a crash left ``sending``, recorded ``ambiguous``, never re-sent;
- ``connector``: what each database does its own way, chosen here once
  (``connector_for``).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, Engine, Row

from channels.base import ChannelAdapter
from orchestrator.config.models import Config
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.crypto import DataCipher
from orchestrator.core.planner import Occurrence as Planned
from orchestrator.core.records import DecisionRecord
from orchestrator.dispatch import recovery
from orchestrator.dispatch.claiming import Claims, occurrence_of
from orchestrator.dispatch.connector import Connector
from orchestrator.dispatch.decider import Decider, Outcome
from orchestrator.dispatch.planning import Planning, planning_digest
from orchestrator.dispatch.postgres import PostgresConnector
from orchestrator.dispatch.recording import Handed, Recorder
from orchestrator.dispatch.sending import Sender
from orchestrator.dispatch.sqlite import SQLiteConnector
from orchestrator.dispatch.webhooks import WebhookDispatcher
from orchestrator.store import tasks
from orchestrator.store.replay import Replayed

__all__ = ["SEND_BATCH", "Runner", "TickResult", "connector_for"]

SEND_BATCH = 100  # default cap of sends claimed together (``OUTREACH_SEND_BATCH``)
SEND_WINDOW = 0.25  # seconds of sending that one batch may hold (see ``batch_size``)
FIRST_BATCH = 10  # sends claimed together before the pace is known


@dataclass
class TickResult:
    planned: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    records: list[DecisionRecord] = field(default_factory=list)


class Runner:
    """Plans and dispatches on a database with one configuration, at injected instants."""

    def __init__(
        self,
        db: Engine,
        config: Config,
        renderer: TemplateRenderer,
        adapters: Mapping[str, ChannelAdapter],
        cipher: DataCipher,
        *,
        public_url: str,
        secret: str,
        batch: int = 500,
        worker: str = "worker",
        not_before: datetime | None = None,
        workers: int = 1,
        stop: threading.Event | None = None,
        send_batch: int = SEND_BATCH,
    ):
        self.db = db
        self.config = config
        self.cipher = cipher
        self.decider = Decider(config, renderer, adapters, public_url=public_url, secret=secret)
        self.batch = batch  # accounts planned, and occurrences leased, at a time
        self.worker = worker
        self.skipped_plans = 0  # rounds left to another worker planning at the time
        # Workers start their planning rounds at partitions of their own (by name).
        self._first_partition = zlib.crc32(worker.encode())
        self.send_batch = max(1, send_batch)  # at most this many sends claimed together
        self.pace: float | None = None  # seconds a send took in the last batch
        self.stop = stop or threading.Event()  # set: finish the current send, then return
        self.plan_digest = planning_digest(config, not_before)
        self.connector = connector_for(db)
        # Where a decision of bad data tells local time: the account's zones may be what
        # could not be worked out.
        default_zone = ZoneInfo(config.policy.timezone.default)
        self.planning = Planning(
            db,
            self.connector,
            self.decider,
            cipher,
            not_before=not_before,
            default_zone=default_zone,
        )
        self.claims = Claims(
            self.connector, self.decider, config, cipher, worker=worker, default_zone=default_zone
        )
        self.sender = Sender(self.connector, self.decider, config, workers=workers, stop=self.stop)
        # Outbound webhooks, set by whoever builds a runner for the daemon (``run``): the
        # daemon's webhooks job and ``run --once`` run a pass of it.
        self.webhooks: WebhookDispatcher | None = None

    # --- one tick ------------------------------------------------------------------------

    def tick(self, now: datetime, *, keep_records: bool = False) -> TickResult:
        """Plan everything due by ``now``, then decide every occurrence due by ``now``."""
        result = TickResult()
        result.planned = self.plan(now)
        self.dispatch(now, result, keep_records=keep_records)
        return result

    def plan(self, now: datetime) -> int:
        """Insert today's occurrences (local day of each debtor) and those of trigger events
        that are still live; returns how many were new.

        Only accounts whose plan can have changed are replayed: those due at
        ``plan_due_at`` (their next local day, promise or instalment deadline, or dated
        fact) and those whose data or facts changed since (``facts.replan`` set it NULL).
        Under a planning configuration other than the last round's (a reload, a new
        release), every account is planned again.

        On PostgreSQL the accounts are planned in partitions (by a hash of the debtor
        id), each by one worker at a time: this worker plans those no other holds,
        starting at a partition of its own, and skips the round (returning 0) when others
        hold them all. Planning is idempotent, so a partition planned twice plans once. A
        planner that dies frees its partition with its connection; the next round plans
        the rest of it."""
        planned = self.planning.plan(
            now, digest=self.plan_digest, page=self.batch, start=self._first_partition
        )
        if planned is None:
            self.skipped_plans += 1
            return 0
        self.sweep_tasks(now)
        return planned

    def sweep_tasks(self, now: datetime) -> int:
        """The tasks of the rules read from facts (promises or a plan broken, an account
        nobody reached), after the planning that wrote the promise and plan states."""
        rules = self.config.policy.tasks.rules
        if rules.promises_broken is None and rules.plan_broken is None and rules.unreached is None:
            return 0
        with self.db.begin() as conn:
            return tasks.sweep(conn, self.config.policy.tasks, now)

    def plan_accounts(self, account_ids: Iterable[str], now: datetime) -> int:
        """Plan just these accounts now (after a payment, a promise, an event arrived), and
        write back the promise states their facts imply (kept, broken)."""
        return self.planning.plan_accounts(account_ids, now)

    # --- dispatch ------------------------------------------------------------------------

    def dispatch(
        self, now: datetime, result: TickResult | None = None, *, keep_records: bool = False
    ) -> TickResult:
        """Decide every occurrence due by ``now``, oldest first, a leased page at a time."""
        result = result or TickResult()
        recorder = self.connector.recorder(self.db, self.sender.settle)
        try:
            with self.db.connect() as conn:  # one connection for every transaction of the run
                due = self.claims.lease(conn, now, self.batch)
                while due and not self.stop.is_set():
                    # PostgreSQL: the next page is leased while this one is sent. Its rows
                    # come after this page's in turn (these are leased, and what this page
                    # defers is due later), so the order is the one page by page.
                    ahead = recorder.ahead(conn, lambda c: self.claims.lease(c, now, self.batch))
                    self._dispatch_page(conn, due, now, result, keep_records, recorder)
                    due = ahead()
        finally:
            _count(result, recorder.close(), keep_records)
        return result

    def recover(self, now: datetime, *, stale: timedelta = timedelta(minutes=15)) -> int:
        """On start: sends this worker left ``sending`` (it crashed mid-send), and anyone's
        ``sending`` older than ``stale``, become ``ambiguous`` — recorded, never re-sent;
        this worker's own leases are released. Returns how many became ambiguous."""
        return recovery.recover(self.db, self.decider, self.cipher, self.worker, now, stale=stale)

    def _dispatch_page(
        self,
        conn: Connection,
        due: Sequence[Row[Any]],
        now: datetime,
        result: TickResult,
        keep_records: bool,
        recorder: Recorder,
    ) -> None:
        """Decide a leased page a batch at a time. Each batch is claimed, judged under its
        debtors' locks and sent by ``_send_batch``, which also records what does not go
        out (deferred, suppressed, blocked...). Then ``recorder`` records what was sent
        (``Sender.settle``): on PostgreSQL on its own connection while the next batch is
        claimed and sent, unless the batch holds a provider's opt-out (the next judgement
        must see it) or sends given back on stopping."""
        start = 0
        while start < len(due) and not self.stop.is_set():
            size = self.batch_size()
            handed = self._send_batch(conn, due[start : start + size], now)
            _count(result, recorder.record(conn, handed, now), keep_records)
            start += size

    def batch_size(self) -> int:
        """How many occurrences to claim together: as many as the last batch sent in about
        ``SEND_WINDOW`` seconds, at most ``send_batch`` (``OUTREACH_SEND_BATCH``).

        A crash mid-batch leaves the whole batch ``sending`` (and the one before, if it
        was still being recorded), which recovery records ``ambiguous`` and never sends
        again, so the batch is the crash exposure; every batch also costs a dozen
        statements and two commits. Sized by time, the exposure
        stays about a quarter of a second of sends whatever the provider: up to
        ``send_batch`` for the outbox, which answers in a fraction of a millisecond, one
        or two for an API that takes 200 ms a message, whose own latency dwarfs the
        batch's cost. Before anything was measured, batches are small."""
        if self.pace is None:
            return min(self.send_batch, FIRST_BATCH)
        return max(1, min(self.send_batch, int(SEND_WINDOW / max(self.pace, 1e-6))))

    def _send_batch(self, conn: Connection, batch: Sequence[Row[Any]], now: datetime) -> Handed:
        """Claim a batch, judge each again and render what may go, and record ``sending``
        in one transaction under the debtors' locks (so N workers never exceed a cap),
        with what does not go out (``Claims.claim``); then hand each to its adapter.
        ``Sender.settle`` records how that went. A crash between leaves the batch
        ``sending``, which recovery turns into ``ambiguous``: never sent twice. Rendering
        comes before ``sending``: a template that fails (or runs past the sandbox's
        bounds) fails its own sends, ``render_error``, never left in doubt, and the rest
        of the batch goes out."""
        if not batch:
            return Handed([], [], [], {}, {})
        claimed = self.claims.claim(conn, batch, now)
        started = time.monotonic()  # real time, not the engine's clock: the exposure is real
        done, unsent = self.sender.hand_over(claimed.ready, now)
        if done:
            self.pace = (time.monotonic() - started) / len(done)
        return Handed(
            [v for _, v in claimed.refused], done, unsent, claimed.by_account, self.decider.marks()
        )

    def occurrence(self, occ_row: Row[Any], rep: Replayed) -> Planned | None:
        """The planned occurrence a stored row stands for, or ``None`` when its step has left
        the configuration or the event that fired its trigger is gone."""
        return occurrence_of(self.config, occ_row, rep)


def _count(result: TickResult, outcomes: Iterable[Outcome], keep_records: bool) -> None:
    for outcome in outcomes:
        result.decisions[str(outcome.record.decision)] += 1
        if keep_records:
            result.records.append(outcome.record)


CONNECTORS: dict[str, type[Connector]] = {
    "postgresql": PostgresConnector,
    "sqlite": SQLiteConnector,
}


def connector_for(db: Engine) -> Connector:
    """The connector of ``db``'s database: the one place that asks which database it is."""
    return CONNECTORS[db.dialect.name](db.dialect)
