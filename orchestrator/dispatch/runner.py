"""The daemon's work on the database: one tick plans due occurrences, then dispatches them.

The account state the gate needs is rebuilt from the facts in the tables
(``orchestrator.store.replay``), the way ``simulate`` builds it, so nothing derived is stored
twice.

Planning inserts occurrences under the unique key (account, step, occurrence key) with
"insert, ignore conflicts", so planning twice, or by two workers, plans once. Dispatch
takes due occurrences, asks the gate (``Decider.judge``, the gate ``simulate`` uses),
renders what may go (``Decider.prepare``: a template that fails is that send's own
``render_error``), records ``sending`` and commits *before* calling the adapter, then
records the outcome: a crash between the two leaves ``sending`` behind, which is never
re-sent blindly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from tenacity import RetryCallState, Retrying, wait_exponential, wait_exponential_jitter

from channels.base import ChannelAdapter, OutboundMessage
from orchestrator.config.models import Config, RetryPolicy, Step, Trigger
from orchestrator.content.rendering import TemplateRenderer
from orchestrator.core.crypto import DataCipher
from orchestrator.core.planner import Occurrence as Planned
from orchestrator.core.records import DecisionKind, DecisionRecord, Reason, iso_local
from orchestrator.core.state import SendHistory, SendRecord
from orchestrator.dispatch.baddata import is_bad_data, note, replay_accounts
from orchestrator.dispatch.connector import DUE, Connector, state_in
from orchestrator.dispatch.decider import Decider, Outcome, message_id_for
from orchestrator.dispatch.planning import Planning, planning_digest
from orchestrator.dispatch.postgres import PostgresConnector
from orchestrator.dispatch.recording import Handed, Recorder
from orchestrator.dispatch.settle import Moved, Sending, send_status
from orchestrator.dispatch.sqlite import SQLiteConnector
from orchestrator.store import facts
from orchestrator.store.accounts import account_from_row, decision_values
from orchestrator.store.inlist import one_of
from orchestrator.store.replay import Replayed
from orchestrator.store.tables import (
    AccountRow,
    Decision,
    OccurrenceRow,
    Send,
    UTCDateTime,
    table_of,
)

account_t = table_of(AccountRow)
occurrence_t = table_of(OccurrenceRow)
send_t = table_of(Send)
decision_t = table_of(Decision)

log = logging.getLogger("outreach.runner")

SEND_BATCH = 100  # default cap of sends claimed together (``OUTREACH_SEND_BATCH``)



# --- the runner ----------------------------------------------------------------------------


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
        self.decider = Decider(config, renderer, adapters, public_url=public_url,
                                     secret=secret)
        self.batch = batch
        self.worker = worker
        self.connector = connector_for(db)
        self.history_span = _history_span(config)
        self.skipped_plans = 0  # rounds left to another worker planning at the time
        self.send_batch = max(1, send_batch)  # at most this many sends claimed together
        self.pace: float | None = None  # seconds a send took in the last batch
        self.stop = stop or threading.Event()  # set: finish the current send, then return
        self.pacers = {
            name: Pacer.from_rate(cfg.rate, workers)
            for name, cfg in config.channels.items() if cfg.rate
        }
        self.plan_digest = planning_digest(config, not_before)
        # Where a decision of bad data tells local time: the account's zones may be what
        # could not be worked out.
        self.default_zone = ZoneInfo(config.policy.timezone.default)
        self.planning = Planning(db, self.connector, self.decider, cipher,
                                 not_before=not_before, default_zone=self.default_zone)

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

        On PostgreSQL one worker plans at a time. The others wait for it to finish and
        then skip the round (returning 0) rather than replay the same accounts again for
        nothing: planning is idempotent, so this only saves work, and what they dispatch
        next is what it planned. A planner that dies releases the lock with its
        connection; the next round is planned by whoever comes first."""
        planned = self.planning.plan(now, digest=self.plan_digest, page=self.batch)
        if planned is None:
            self.skipped_plans += 1
            return 0
        return planned

    def plan_accounts(self, account_ids: Iterable[str], now: datetime) -> int:
        """Plan just these accounts now (after a payment, a promise, an event arrived), and
        write back the promise states their facts imply (kept, broken)."""
        return self.planning.plan_accounts(account_ids, now)

    # --- dispatch ------------------------------------------------------------------------

    def dispatch(self, now: datetime, result: TickResult | None = None, *,
                 keep_records: bool = False) -> TickResult:
        """Decide every occurrence due by ``now``, oldest first, a leased page at a time."""
        result = result or TickResult()
        recorder = self.connector.recorder(self.db, self._settle)
        try:
            with self.db.connect() as conn:  # one connection for every transaction of the run
                due = self._lease(conn, now)
                while due and not self.stop.is_set():
                    # PostgreSQL: the next page is leased while this one is sent. Its rows
                    # come after this page's in turn (these are leased, and what this page
                    # defers is due later), so the order is the one page by page.
                    ahead = recorder.ahead(conn, lambda c: self._lease(c, now))
                    self._dispatch_page(conn, due, now, result, keep_records, recorder)
                    due = ahead()
        finally:
            _count(result, recorder.close(), keep_records)
        return result

    def _lease(self, conn: Connection, now: datetime) -> list[Row[Any]]:
        """Take a page of due occurrences for this worker (``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL; SQLite has one writer at a time), so two workers never decide the
        same occurrence. A lease left by a crashed worker lapses after ``LEASE``. Each
        row comes with its account's ``debtor_id``."""
        with conn.begin():
            rows = self.connector.lease(conn, now=now, until=now + LEASE, worker=self.worker,
                                        limit=self.batch)
        return sorted(rows, key=lambda r: (r.next_attempt_at, r.planned_at, r.account_id,
                                           r.step_id, r.occurrence_key))

    def recover(self, now: datetime, *, stale: timedelta = timedelta(minutes=15)) -> int:
        """On start: sends this worker left ``sending`` (it crashed mid-send), and anyone's
        ``sending`` older than ``stale``, become ``ambiguous`` — recorded, never re-sent;
        this worker's own leases are released. Returns how many became ambiguous."""
        stuck_q = sa.select(occurrence_t).where(
            occurrence_t.c.state == "sending",
            sa.or_(occurrence_t.c.claimed_by == self.worker,
                   occurrence_t.c.updated_at < now - stale),
        )
        with self.db.begin() as conn:
            conn.execute(
                occurrence_t.update().where(
                    occurrence_t.c.claimed_by == self.worker, occurrence_t.c.state.in_(DUE)
                ).values(lease_until=None)
            )
            stuck = conn.execute(stuck_q).all()
            for occ_row in stuck:
                row = conn.execute(sa.select(account_t).where(
                    account_t.c.account_id == occ_row.account_id)).one()
                rules = self.decider.rules(account_from_row(row, self.cipher))
                message_id = conn.execute(sa.select(send_t.c.message_id).where(
                    send_t.c.occurrence_id == occ_row.id)).scalar()
                record = DecisionRecord(
                    time=now, local_time=iso_local(now, rules.zones.primary),
                    account=occ_row.account_id, debtor=row.debtor_id, stage=occ_row.stage,
                    step=occ_row.step_id, channel=occ_row.channel, kind=occ_row.kind,
                    decision=DecisionKind.ambiguous, reason=Reason.interrupted,
                    message_id=message_id,
                )
                conn.execute(decision_t.insert(),
                             [decision_values(record, occurrence_id=occ_row.id)])
                conn.execute(occurrence_t.update().where(occurrence_t.c.id == occ_row.id)
                             .values(state="ambiguous", lease_until=None, updated_at=now))
                conn.execute(send_t.update().where(send_t.c.occurrence_id == occ_row.id)
                             .values(status="ambiguous", status_at=now))
        return len(stuck)

    def _dispatch_page(self, conn: Connection, due: Sequence[Row[Any]], now: datetime,
                       result: TickResult, keep_records: bool,
                       recorder: Recorder) -> None:
        """Decide a leased page a batch at a time. Each batch is claimed, judged under its
        debtors' locks and sent by ``_send_batch``, which also records what does not go
        out (deferred, suppressed, blocked...): one replay of each account's facts per
        batch, and only under the lock, where the judgement counts. Then ``_settle``
        records what was sent: on PostgreSQL by ``recorder``, on its own connection while
        the next batch is claimed and sent, unless the batch holds a provider's opt-out
        (the next judgement must see it) or sends given back on stopping."""
        start = 0
        while start < len(due) and not self.stop.is_set():
            size = self.batch_size()
            handed = self._send_batch(conn, due[start:start + size], now)
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

    def _not_applicable(self, occ_row: Row[Any], rep: Replayed, now: datetime) -> Outcome:
        """The step left the configuration, or the event that caused it is gone."""
        return Outcome(DecisionRecord(
            time=now, local_time=iso_local(now, rep.rules.zones.primary),
            account=occ_row.account_id, debtor=rep.state.account.debtor_id,
            stage=occ_row.stage, step=occ_row.step_id, channel=occ_row.channel,
            kind=occ_row.kind, decision=DecisionKind.skipped, reason=Reason.not_applicable,
        ))

    def _histories(self, conn: Connection, debtors: Iterable[str], now: datetime
                   ) -> dict[str, SendHistory]:
        out: dict[str, SendHistory] = defaultdict(SendHistory)
        for s in conn.execute(_HISTORY, {"debtors": list(debtors),
                                         "since": now - self.history_span, "now": now}):
            out[s.debtor_id].add(SendRecord(s.sent_at, s.channel, s.account_id, s.debtor_id))
        return out

    def occurrence(self, occ_row: Row[Any], rep: Replayed) -> Planned | None:
        """The planned occurrence a stored row stands for, or ``None`` when its step has left
        the configuration or the event that fired its trigger is gone."""
        step = self.config.step(occ_row.step_id)
        if step is None:
            return None
        fire = None
        if isinstance(step, Trigger):
            fire = next((f for f in rep.fires
                         if f.event == step.on and f.key == occ_row.occurrence_key), None)
            if fire is None:
                return None
        assert isinstance(step, Step | Trigger)
        return Planned(
            account_id=occ_row.account_id,
            step_id=occ_row.step_id,
            key=occ_row.occurrence_key,
            stage=occ_row.stage,
            channel=occ_row.channel,
            template=step.template,
            kind=step.kind if isinstance(step, Step) else step.effective_kind,
            planned_at=occ_row.planned_at,
            expires_at=occ_row.expires_at,
            trigger=fire,
        )

    def _accounts_locked(self, conn: Connection, debtors: set[str], batch: Sequence[Row[Any]]
                         ) -> list[Row[Any]]:
        """Every account of the batch's debtors, under their locks. An account that moved
        to another debtor since the lease (a re-import) has that debtor locked as well,
        and its other accounts read with it. That lock comes after the sorted ones, so two
        workers may then deadlock: PostgreSQL aborts one, whose lease lapses (``LEASE``)
        and is taken again. Rare: only a debtor change during dispatch."""
        locked = set(debtors)
        ids = [o.account_id for o in batch]
        while True:
            rows = conn.execute(_ACCOUNTS_OF, {"debtors": sorted(locked), "ids": ids}).all()
            moved = {r.debtor_id for r in rows} - locked
            if not moved:
                return list(rows)
            self.connector.lock_debtors(conn, moved)
            locked |= moved

    def _send_batch(self, conn: Connection, batch: Sequence[Row[Any]], now: datetime
                    ) -> Handed:
        """Claim a batch, judge each again and render what may go, and record ``sending``
        in one transaction under the debtors' locks (so N workers never exceed a cap),
        with what does not go out; then hand each to its adapter. ``_settle`` records how
        that went. A crash between leaves the batch ``sending``, which recovery turns
        into ``ambiguous``: never sent twice. Rendering comes before ``sending``: a
        template that fails (or runs past the sandbox's bounds) fails its own sends,
        ``render_error``, never left in doubt, and the rest of the batch goes out."""
        if not batch:
            return Handed([], [], [], {}, {})
        with conn.begin():
            debtors = {o.debtor_id for o in batch}
            self.connector.lock_debtors(conn, debtors)
            claimed = set(conn.execute(_CLAIM, {
                "ids": [o.id for o in batch], "b_worker": self.worker, "b_now": now}).scalars())
            rows = self._accounts_locked(conn, debtors, batch)
            replayed, bad = replay_accounts(conn, rows, now, self.cipher, self.decider.rules)
            for account_id in sorted(bad):
                note(account_id, bad[account_id], "dispatch")
            histories = self._histories(conn, {r.debtor_id for r in rows}, now)
            by_account = {r.account_id: r for r in rows}
            ready, refused = self._prepare(
                [o for o in batch if o.id in claimed],  # the others: another worker's
                replayed, histories, now)
            self._record_refused(conn, refused, now)
            self._record_sending(conn, ready, by_account, now)
        done, unsent = self._hand_over(ready, now)
        return Handed([v for _, v in refused], done, unsent, by_account,
                       self.decider.marks())

    def _prepare(self, batch: Sequence[Row[Any]], replayed: Mapping[str, Replayed],
                 histories: Mapping[str, SendHistory], now: datetime
                 ) -> tuple[list[_Ready], list[tuple[int, Outcome]]]:
        """Each claimed occurrence judged under the lock and, if it may go, rendered:
        (ready to send, refused with their outcome). A send that will go counts toward
        the limits of the ones after it in the batch; one refused or failed does not. An
        occurrence of an account whose facts could not be replayed, or that cannot be
        judged, fails alone (``bad_data``): the rest of the batch goes on."""
        ready: list[_Ready] = []
        refused: list[tuple[int, Outcome]] = []
        for occ_row in batch:
            rep = replayed.get(occ_row.account_id)
            if rep is None:  # its replay failed (logged once for the batch)
                refused.append((occ_row.id, self._bad_data(occ_row, now)))
                continue
            history = histories[rep.state.account.debtor_id]
            try:
                occ, outcome = self._judge(occ_row, rep, history, now)
            except Exception as exc:
                if not is_bad_data(exc):
                    raise
                note(occ_row.account_id, exc, "judge")
                refused.append((occ_row.id, self._bad_data(occ_row, now)))
                continue
            if outcome is None:  # allowed: render it now, before it is recorded sending
                assert occ is not None
                message_id = message_id_for(occ.account_id, occ.step_id, occ.key)
                prepared = self.decider.prepare(occ, rep.state, rep.rules, now, message_id)
                if isinstance(prepared, OutboundMessage):
                    account = rep.state.account
                    history.add(SendRecord(now, occ.channel, account.account_id,
                                           account.debtor_id))
                    ready.append(_Ready(occ_row, occ, rep, prepared))
                    continue
                outcome = prepared  # its template failed
            # A STOP, a payment or another worker's send since, or a template that failed.
            refused.append((occ_row.id, outcome))
        return ready, refused

    def _record_refused(self, conn: Connection, refused: Sequence[tuple[int, Outcome]],
                        now: datetime) -> None:
        """What does not go out, recorded with the claim: decided, no adapter called."""
        if refused:
            self.connector.decisions(conn, [(i, v.record) for i, v in refused])
            self.connector.occurrences(conn, [Moved.of(i, v) for i, v in refused], now,
                                       attempted=False)

    def _record_sending(self, conn: Connection, ready: Sequence[_Ready],
                        by_account: Mapping[str, Row[Any]], now: datetime) -> None:
        """A send row ``sending`` for each message about to be handed over."""
        if not ready:
            return
        written = self.connector.sending(conn, [Sending(
            r.message.message_id, r.occ.account_id, r.rep.state.account.debtor_id,
            r.occ.channel, r.row.id,
            by_account[r.occ.account_id].email_index if r.occ.channel == "email"
            else by_account[r.occ.account_id].phone_index,
        ) for r in ready], now)
        if written != len(ready):  # a send row not failed: never send it again
            raise RuntimeError("a claimed occurrence already has a send in progress "
                               "or done; nothing of this batch was sent")

    def _hand_over(self, ready: Sequence[_Ready], now: datetime
                   ) -> tuple[list[tuple[Row[Any], Outcome, str]], list[tuple[Row[Any], str]]]:
        """Each rendered message to its adapter, paced: (done, given back on stopping)."""
        done: list[tuple[Row[Any], Outcome, str]] = []
        unsent: list[tuple[Row[Any], str]] = []
        started = time.monotonic()  # real time, not the engine's clock: the exposure is real
        for r in ready:
            if self.stop.is_set():  # stopping: give back what was not handed over yet
                unsent.append((r.row, r.message.message_id))
                continue
            pacer = self.pacers.get(r.occ.channel)
            if pacer is not None:
                pacer.wait()
            outcome = self.decider.deliver(r.occ, r.rep.state, r.rep.rules, now, r.message)
            if outcome.retryable:
                outcome = self._retry_or_fail(r.row, outcome, now)
            done.append((r.row, outcome, r.message.message_id))
        if done:
            self.pace = (time.monotonic() - started) / len(done)
        return done, unsent

    def _judge(self, occ_row: Row[Any], rep: Replayed, history: SendHistory, now: datetime
               ) -> tuple[Planned | None, Outcome | None]:
        """The occurrence a row stands for and the gate's verdict on it (``None``: it may go
        now); skipped when its step or the event behind it is gone."""
        occ = self.occurrence(occ_row, rep)
        if occ is None:
            return None, self._not_applicable(occ_row, rep, now)
        return occ, self.decider.judge(occ, rep.state, history, now, rep.rules)

    def _bad_data(self, occ_row: Row[Any], now: datetime) -> Outcome:
        """An occurrence whose account's data cannot be replayed or judged: ``failed`` with
        reason ``bad_data``, settled (never retried)."""
        return Outcome(DecisionRecord(
            time=now, local_time=iso_local(now, self.default_zone), account=occ_row.account_id,
            debtor=occ_row.debtor_id, stage=occ_row.stage, step=occ_row.step_id,
            channel=occ_row.channel, kind=occ_row.kind, decision=DecisionKind.failed,
            reason=Reason.bad_data))

    def _settle(self, conn: Connection, handed: Handed, now: datetime) -> list[Outcome]:
        """Record a sent batch once its adapters made it durable: decisions, occurrences,
        sends, a provider's opt-outs, and sends given back (stopping) pending again.
        Returns the batch's outcomes, those refused at the claim first."""
        done, unsent, by_account = handed.done, handed.unsent, handed.by_account
        synced = self.decider.synced([o for _, o, _ in done], handed.marks)
        done = [(r, o, m) for (r, _, m), o in zip(done, synced, strict=True)]
        with conn.begin():
            if done:
                self.connector.settled(
                    conn, [(r.id, o.record) for r, o, _ in done],
                    [Moved.of(r.id, o) for r, o, _ in done],
                    [(m, send_status(str(o.record.decision)), o.provider_id) for _, o, m in done],
                    now)
            for _, o, _ in done:
                if o.opt_out:  # the provider refused: the recipient opted out there
                    owner = by_account.get(o.record.account)
                    facts.opt_out(conn, debtor_id=o.record.debtor, account_id=o.record.account,
                                  channel=o.record.channel or "sms",
                                  contact_index=owner.phone_index if owner else None,
                                  source="provider", at=now)
            if unsent:
                conn.execute(occurrence_t.update().where(
                    occurrence_t.c.id.in_([r.id for r, _ in unsent]),
                    occurrence_t.c.state == "sending",
                ).values(state="pending", lease_until=None, updated_at=now))
                conn.execute(send_t.delete().where(
                    send_t.c.message_id.in_([m for _, m in unsent]),
                    send_t.c.status == "sending"))
        return [*handed.refused, *(o for _, o, _ in done)]

    def _retry_or_fail(self, occ_row: Row[Any], outcome: Outcome, now: datetime) -> Outcome:
        """A transient error: try again later (the gate runs again then), while attempts
        remain under the channel's retry policy; otherwise it stays ``failed``."""
        cfg = self.config.channels.get(occ_row.channel)
        if cfg is None:
            return outcome
        attempt = occ_row.attempts + 1  # this one
        if attempt >= cfg.retry.attempts:
            return outcome
        until = now + retry_wait(cfg.retry, attempt)
        record = replace(outcome.record, decision=DecisionKind.deferred, until=until)
        return Outcome(record, defer_until=until)


@dataclass(frozen=True)
class _Ready:
    """A claimed occurrence, judged and rendered, about to be handed to its adapter."""

    row: Row[Any]
    occ: Planned
    rep: Replayed
    message: OutboundMessage


def _count(result: TickResult, outcomes: Iterable[Outcome], keep_records: bool) -> None:
    for outcome in outcomes:
        result.decisions[str(outcome.record.decision)] += 1
        if keep_records:
            result.records.append(outcome.record)


LEASE = timedelta(minutes=5)
SEND_WINDOW = 0.25  # seconds of sending that one batch may hold (see ``batch_size``)
FIRST_BATCH = 10  # sends claimed together before the pace is known


def retry_wait(policy: RetryPolicy, attempt: int) -> timedelta:
    """How long to wait before attempt ``attempt + 1``: tenacity's exponential backoff
    from ``backoff`` up to ``max_backoff``, with jitter if the policy asks for it."""
    initial = policy.backoff.delta.total_seconds()
    cap = policy.max_backoff.delta.total_seconds()
    strategy = (wait_exponential_jitter(initial=initial, max=cap, jitter=initial)
                if policy.jitter else wait_exponential(multiplier=initial, max=cap))
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return timedelta(seconds=strategy(state))


class Pacer:
    """A provider's rate (``10/s``) for this process: at most one send per interval.

    With N workers, each takes ``rate / N`` (``OUTREACH_WORKERS``), so together they stay
    within the provider's limit without talking to each other. Real time, not the
    engine's clock: it paces calls to a real API.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self._next = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_rate(cls, rate: str, workers: int = 1) -> Pacer:
        count, _, unit = rate.replace(" ", "").partition("/")
        per = {"s": 1.0, "m": 60.0, "h": 3600.0}[unit]
        return cls(per * max(workers, 1) / float(count))

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                time.sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


_CLAIM = (occurrence_t.update()
          .where(one_of(occurrence_t.c.id, "ids"), state_in(DUE))
          .values(state="sending", claimed_by=sa.bindparam("b_worker"),
                  updated_at=sa.bindparam("b_now", type_=UTCDateTime()))
          .returning(occurrence_t.c.id))
_ACCOUNTS_OF = sa.select(account_t).where(
    sa.or_(one_of(account_t.c.debtor_id, "debtors"), one_of(account_t.c.account_id, "ids")))
_HISTORY = sa.select(send_t.c.sent_at, send_t.c.channel, send_t.c.account_id,
                     send_t.c.debtor_id).where(
    one_of(send_t.c.debtor_id, "debtors"),
    send_t.c.sent_at > sa.bindparam("since", type_=UTCDateTime()),
    send_t.c.sent_at <= sa.bindparam("now", type_=UTCDateTime()),
    send_t.c.status != "failed",
)


def _history_span(config: Config) -> timedelta:
    """How far back limits can look: the longest window, plus a day for local-day windows."""
    windows = [limit.window.delta for limit in config.policy.limits]
    for overlay in [*config.policy.jurisdictions.values(), *config.policy.profiles.values()]:
        windows.extend(limit.window.delta for limit in overlay.limits)
    return max(windows, default=timedelta(days=1)) + timedelta(days=2)


CONNECTORS: dict[str, type[Connector]] = {
    "postgresql": PostgresConnector, "sqlite": SQLiteConnector}


def connector_for(db: Engine) -> Connector:
    """The connector of ``db``'s database: the one place that asks which database it is."""
    return CONNECTORS[db.dialect.name](db.dialect)
