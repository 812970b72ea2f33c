"""Claiming due occurrences: a page leased, then a batch at a time claimed and judged.

A worker leases a page of due occurrences so that no other takes them (``Claims.lease``),
then claims a batch of them in one transaction under its debtors' locks (so N workers
never exceed a cap): each is judged again by the gate ``simulate`` uses
(``Decider.judge``) on its account's state replayed from the facts, and what may go is
rendered (``Decider.prepare``: a template that fails is that send's own
``render_error``); an operator's pause (``store.pauses``), read in the same transaction,
defers what it covers (``paused_by_operator``). What does not go out is recorded then; what does is recorded
``sending`` and committed *before* any adapter is called, so a crash between the two
leaves ``sending`` behind, which is never re-sent blindly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from channels.base import OutboundMessage
from orchestrator.config.models import Config, Kind, Policy, Step, Trigger
from orchestrator.core.crypto import DataCipher
from orchestrator.core.planner import Occurrence as Planned
from orchestrator.core.priority import window_of
from orchestrator.core.records import DecisionKind, DecisionRecord, Reason, iso_local
from orchestrator.core.state import SendHistory, SendRecord
from orchestrator.core.validation import VALIDATION_STEP, is_notice
from orchestrator.dispatch.baddata import is_bad_data, note, replay_accounts
from orchestrator.dispatch.connector import DUE, Connector, state_in
from orchestrator.dispatch.decider import Decider, Outcome, message_id_for
from orchestrator.dispatch.settle import Moved, Sending
from orchestrator.store.inlist import one_of
from orchestrator.store.pauses import ActivePause, active_pauses, covering
from orchestrator.store.replay import Replayed
from orchestrator.store.tables import (
    AccountEvent,
    AccountRow,
    OccurrenceRow,
    Send,
    UTCDateTime,
    table_of,
)

__all__ = ["LEASE", "Claimed", "Claims", "Ready", "occurrence_of"]

account_t = table_of(AccountRow)
occurrence_t = table_of(OccurrenceRow)
send_t = table_of(Send)
event_t = table_of(AccountEvent)

LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class Ready:
    """A claimed occurrence, judged and rendered, about to be handed to its adapter."""

    row: Row[Any]
    occ: Planned
    rep: Replayed
    message: OutboundMessage


@dataclass(frozen=True)
class Claimed:
    """A batch claimed: what goes out, what does not (recorded with the claim, with its
    outcome) and the batch's accounts by id, as read under the lock."""

    ready: list[Ready]
    refused: list[tuple[int, Outcome]]
    by_account: dict[str, Row[Any]]


class Claims:
    """Leases, claims and judges due occurrences for one worker."""

    def __init__(
        self,
        connector: Connector,
        decider: Decider,
        config: Config,
        cipher: DataCipher,
        *,
        worker: str,
        default_zone: ZoneInfo,
    ):
        self.connector = connector
        self.decider = decider
        self.config = config
        self.cipher = cipher
        self.worker = worker
        self.history_span = _history_span(config)
        policy = config.policy
        overlays = [*policy.jurisdictions.values(), *policy.profiles.values()]
        self.agency_limits = any(
            limit.agency_contacts
            for limit in [*policy.limits, *(lim for o in overlays for lim in o.limits)]
        )
        # Where a decision of bad data tells local time: the account's zones may be what
        # could not be worked out.
        self.default_zone = default_zone

    def lease(self, conn: Connection, now: datetime, limit: int) -> list[Row[Any]]:
        """Take a page of up to ``limit`` due occurrences for this worker, so two workers
        never decide the same occurrence (``Connector.lease``). A lease left by a crashed
        worker lapses after ``LEASE``. Each row comes with its account's ``debtor_id``."""
        with conn.begin():
            rows = self.connector.lease(
                conn, now=now, until=now + LEASE, worker=self.worker, limit=limit
            )
        return sorted(
            rows,
            key=lambda r: (
                r.next_attempt_at,
                r.priority,
                r.planned_at,
                r.account_id,
                r.step_id,
                r.occurrence_key,
            ),
        )

    def claim(self, conn: Connection, batch: Sequence[Row[Any]], now: datetime) -> Claimed:
        """Claim a batch, judge each again and render what may go, and record ``sending``
        in one transaction under the debtors' locks, with what does not go out: one
        replay of each account's facts per batch, and only under the lock, where the
        judgement counts."""
        with conn.begin():
            debtors = {o.debtor_id for o in batch}
            if self.decider.budget is not None:  # counted by one claim at a time
                self.connector.lock_budgets(conn)
                self.decider.budget.load(budget_counts(conn, self.config.policy, now))
            self.connector.lock_debtors(conn, debtors)
            claimed = set(
                conn.execute(
                    _CLAIM, {"ids": [o.id for o in batch], "b_worker": self.worker, "b_now": now}
                ).scalars()
            )
            rows = self._accounts_locked(conn, debtors, batch)
            replayed, bad = replay_accounts(conn, rows, now, self.cipher, self.decider.rules)
            for account_id in sorted(bad):
                note(account_id, bad[account_id], "dispatch")
            histories = self._histories(conn, {r.debtor_id for r in rows}, now)
            by_account = {r.account_id: r for r in rows}
            # Read last, under the locks: a pause committed before this statement holds
            # back the whole batch; one committed after it, the next batch.
            pauses = active_pauses(conn)
            ready, refused = self._prepare(
                [o for o in batch if o.id in claimed],  # the others: another worker's
                replayed,
                histories,
                now,
                pauses,
            )
            self._record_refused(conn, refused, now)
            self._record_sending(conn, ready, by_account, now)
        return Claimed(ready, refused, by_account)

    def _accounts_locked(
        self, conn: Connection, debtors: set[str], batch: Sequence[Row[Any]]
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

    def _histories(
        self, conn: Connection, debtors: Iterable[str], now: datetime
    ) -> dict[str, SendHistory]:
        out: dict[str, SendHistory] = defaultdict(SendHistory)
        params = {"debtors": list(debtors), "since": now - self.history_span, "now": now}
        for s in conn.execute(_HISTORY, params):
            out[s.debtor_id].add(SendRecord(s.sent_at, s.channel, s.account_id, s.debtor_id))
        if self.agency_limits:  # the agencies' reported contacts, where a limit counts them
            for e in conn.execute(_AGENCY_CONTACTS, params):
                out[e.debtor_id].add(SendRecord(e.time, e.channel, e.account_id, e.debtor_id, True))
        return out

    def _prepare(
        self,
        batch: Sequence[Row[Any]],
        replayed: Mapping[str, Replayed],
        histories: Mapping[str, SendHistory],
        now: datetime,
        pauses: Sequence[ActivePause] = (),
    ) -> tuple[list[Ready], list[tuple[int, Outcome]]]:
        """Each claimed occurrence judged under the lock and, if it may go, rendered:
        (ready to send, refused with their outcome). A send that will go counts toward
        the limits of the ones after it in the batch; one refused or failed does not. An
        occurrence of an account whose facts could not be replayed, or that cannot be
        judged, fails alone (``bad_data``): the rest of the batch goes on. One the gate
        allows but an operator's pause covers (``pauses``) is deferred,
        ``paused_by_operator``: a pause only ever holds back more than the gate."""
        ready: list[Ready] = []
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
            if outcome is None and covering(pauses, occ_row.channel, self._creditor_of(rep)):
                assert occ is not None
                outcome = self.decider.paused(occ, rep.state, rep.rules, now)
            if outcome is None:  # allowed: render it now, before it is recorded sending
                assert occ is not None
                message_id = message_id_for(occ.account_id, occ.step_id, occ.key)
                prepared = self.decider.prepare(occ, rep.state, rep.rules, now, message_id)
                if isinstance(prepared, OutboundMessage):
                    account = rep.state.account
                    history.add(SendRecord(now, occ.channel, account.account_id, account.debtor_id))
                    if is_notice(occ):  # the account's collection after it in the batch may go
                        rep.state.notice_sent_at = now
                    self.decider.spent(occ.channel, now)
                    ready.append(Ready(occ_row, occ, rep, prepared))
                    continue
                outcome = prepared  # its template failed
            # A STOP, a payment or another worker's send since, a template that failed, or
            # an operator's pause.
            refused.append((occ_row.id, outcome))
        return ready, refused

    def _creditor_of(self, rep: Replayed) -> str | None:
        """The key of the account's creditor, as its messages name it: an account without
        one is the first creditor's (``Config.creditor``)."""
        key = rep.state.account.creditor
        return key if key is not None else next(iter(self.config.creditors.creditors), None)

    def _judge(
        self, occ_row: Row[Any], rep: Replayed, history: SendHistory, now: datetime
    ) -> tuple[Planned | None, Outcome | None]:
        """The occurrence a row stands for and the gate's verdict on it (``None``: it may go
        now); skipped when its step or the event behind it is gone."""
        occ = occurrence_of(self.config, occ_row, rep)
        if occ is None:
            return None, _not_applicable(occ_row, rep, now)
        return occ, self.decider.judge(occ, rep.state, history, now, rep.rules)

    def _bad_data(self, occ_row: Row[Any], now: datetime) -> Outcome:
        """An occurrence whose account's data cannot be replayed or judged: ``failed`` with
        reason ``bad_data``, settled (never retried)."""
        return Outcome(
            DecisionRecord(
                time=now,
                local_time=iso_local(now, self.default_zone),
                account=occ_row.account_id,
                debtor=occ_row.debtor_id,
                stage=occ_row.stage,
                step=occ_row.step_id,
                channel=occ_row.channel,
                kind=occ_row.kind,
                decision=DecisionKind.failed,
                reason=Reason.bad_data,
                segment=occ_row.segment,
                experiment=occ_row.experiment,
                variant=occ_row.variant,
            )
        )

    def _record_refused(
        self, conn: Connection, refused: Sequence[tuple[int, Outcome]], now: datetime
    ) -> None:
        """What does not go out, recorded with the claim: decided, no adapter called."""
        if refused:
            self.connector.decisions(conn, [(i, v.record) for i, v in refused])
            self.connector.occurrences(
                conn, [Moved.of(i, v) for i, v in refused], now, attempted=False
            )

    def _record_sending(
        self,
        conn: Connection,
        ready: Sequence[Ready],
        by_account: Mapping[str, Row[Any]],
        now: datetime,
    ) -> None:
        """A send row ``sending`` for each message about to be handed over."""
        if not ready:
            return
        written = self.connector.sending(
            conn,
            [
                Sending(
                    r.message.message_id,
                    r.occ.account_id,
                    r.rep.state.account.debtor_id,
                    r.occ.channel,
                    r.row.id,
                    by_account[r.occ.account_id].email_index
                    if r.occ.channel == "email"
                    else by_account[r.occ.account_id].phone_index,
                )
                for r in ready
            ],
            now,
        )
        if written != len(ready):  # a send row not failed: never send it again
            raise RuntimeError(
                "a claimed occurrence already has a send in progress "
                "or done; nothing of this batch was sent"
            )


def occurrence_of(config: Config, occ_row: Row[Any], rep: Replayed) -> Planned | None:
    """The planned occurrence a stored row stands for, or ``None`` when its step has left
    the configuration or the event that fired its trigger is gone."""
    if occ_row.step_id == VALIDATION_STEP:
        return notice_of(occ_row, rep)
    step = config.step(occ_row.step_id)
    if step is None:
        return None
    fire = None
    if isinstance(step, Trigger):
        fire = next(
            (f for f in rep.fires if f.event == step.on and f.key == occ_row.occurrence_key), None
        )
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
        segment=occ_row.segment,
        experiment=occ_row.experiment,
        variant=occ_row.variant,
        priority=occ_row.priority,
    )


def notice_of(occ_row: Row[Any], rep: Replayed) -> Planned | None:
    """The validation notice a stored row stands for (``core.validation``), or ``None``
    when the account's rules no longer ask for one."""
    notice = rep.rules.validation_notice
    if notice is None:
        return None
    return Planned(
        account_id=occ_row.account_id,
        step_id=occ_row.step_id,
        key=occ_row.occurrence_key,
        stage=occ_row.stage,
        channel=occ_row.channel,
        template=notice.template,
        kind=Kind.notice,
        planned_at=occ_row.planned_at,
        expires_at=occ_row.expires_at,
        segment=occ_row.segment,
        experiment=occ_row.experiment,
        variant=occ_row.variant,
        priority=occ_row.priority,
    )


def _not_applicable(occ_row: Row[Any], rep: Replayed, now: datetime) -> Outcome:
    """The step left the configuration, or the event that caused it is gone."""
    return Outcome(
        DecisionRecord(
            time=now,
            local_time=iso_local(now, rep.rules.zones.primary),
            account=occ_row.account_id,
            debtor=rep.state.account.debtor_id,
            stage=occ_row.stage,
            step=occ_row.step_id,
            channel=occ_row.channel,
            kind=occ_row.kind,
            decision=DecisionKind.skipped,
            reason=Reason.not_applicable,
            segment=occ_row.segment,
            experiment=occ_row.experiment,
            variant=occ_row.variant,
        )
    )


def budget_counts(
    conn: Connection, policy: Policy, now: datetime
) -> dict[tuple[str, datetime], int]:
    """Each budget's sends in its current window, as the database holds them (failed
    ones do not count, as for limits)."""
    out: dict[tuple[str, datetime], int] = {}
    for budget in policy.budgets:
        start, _ = window_of(budget, now, policy.timezone.default)
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(send_t)
            .where(
                send_t.c.channel.in_(budget.channels),
                send_t.c.sent_at >= start,
                send_t.c.sent_at <= now,
                send_t.c.status != "failed",
            )
        ).scalar_one()
        out[(budget.id, start)] = int(count)
    return out


def _history_span(config: Config) -> timedelta:
    """How far back limits can look: the longest window, plus a day for local-day windows."""
    windows = [limit.window.delta for limit in config.policy.limits]
    for overlay in [*config.policy.jurisdictions.values(), *config.policy.profiles.values()]:
        windows.extend(limit.window.delta for limit in overlay.limits)
    return max(windows, default=timedelta(days=1)) + timedelta(days=2)


_CLAIM = (
    occurrence_t.update()
    .where(one_of(occurrence_t.c.id, "ids"), state_in(DUE))
    .values(
        state="sending",
        claimed_by=sa.bindparam("b_worker"),
        updated_at=sa.bindparam("b_now", type_=UTCDateTime()),
    )
    .returning(occurrence_t.c.id)
)
_ACCOUNTS_OF = sa.select(account_t).where(
    sa.or_(one_of(account_t.c.debtor_id, "debtors"), one_of(account_t.c.account_id, "ids"))
)
_HISTORY = sa.select(
    send_t.c.sent_at, send_t.c.channel, send_t.c.account_id, send_t.c.debtor_id
).where(
    one_of(send_t.c.debtor_id, "debtors"),
    send_t.c.sent_at > sa.bindparam("since", type_=UTCDateTime()),
    send_t.c.sent_at <= sa.bindparam("now", type_=UTCDateTime()),
    send_t.c.status != "failed",
)
# Contacts collection agencies reported (``agency_contact`` events) of these debtors.
_AGENCY_CONTACTS = (
    sa.select(event_t.c.time, event_t.c.channel, event_t.c.account_id, account_t.c.debtor_id)
    .select_from(event_t.join(account_t, account_t.c.account_id == event_t.c.account_id))
    .where(
        one_of(account_t.c.debtor_id, "debtors"),
        event_t.c.type == "agency_contact",
        event_t.c.channel.is_not(None),
        event_t.c.time > sa.bindparam("since", type_=UTCDateTime()),
        event_t.c.time <= sa.bindparam("now", type_=UTCDateTime()),
    )
)
