"""Sending a claimed batch: each message to its adapter, then the batch recorded.

Each rendered message goes to its channel's adapter at the provider's rate (``Pacer``);
a transient failure is tried again later while the channel's retry policy allows
(``retry_wait``: the gate judges it again then), else it stays ``failed``. Once the
adapters made the batch durable, ``Sender.settle`` records how it went: decisions,
occurrences, send rows, a provider's opt-outs, and the sends given back on stopping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Row
from tenacity import RetryCallState, Retrying, wait_exponential, wait_exponential_jitter

from orchestrator.config.models import Config, RetryPolicy
from orchestrator.core.records import DecisionKind
from orchestrator.dispatch.claiming import Ready
from orchestrator.dispatch.connector import Connector
from orchestrator.dispatch.decider import Decider, Outcome
from orchestrator.dispatch.recording import Handed
from orchestrator.dispatch.settle import Moved, send_status
from orchestrator.store import facts
from orchestrator.store.tables import OccurrenceRow, Send, table_of

__all__ = ["Pacer", "Sender", "retry_wait"]

occurrence_t = table_of(OccurrenceRow)
send_t = table_of(Send)


class Sender:
    """Hands claimed messages to their adapters and records how it went."""

    def __init__(
        self,
        connector: Connector,
        decider: Decider,
        config: Config,
        *,
        workers: int,
        stop: threading.Event,
    ):
        self.connector = connector
        self.decider = decider
        self.config = config
        self.stop = stop  # set: finish the current send, then give the rest back
        self.pacers = {
            name: Pacer.from_rate(cfg.rate, workers)
            for name, cfg in config.channels.items()
            if cfg.rate
        }
        # Told of each message handed to an adapter: (channel, seconds, outcome); the
        # daemon's metrics (``dispatch.metrics``) when it serves them.
        self.on_deliver: Callable[[str, float, Outcome], None] | None = None

    def hand_over(
        self, ready: Sequence[Ready], now: datetime
    ) -> tuple[list[tuple[Row[Any], Outcome, str]], list[tuple[Row[Any], str]]]:
        """Each rendered message to its adapter, paced: (done, given back on stopping)."""
        done: list[tuple[Row[Any], Outcome, str]] = []
        unsent: list[tuple[Row[Any], str]] = []
        for r in ready:
            if self.stop.is_set():  # stopping: give back what was not handed over yet
                unsent.append((r.row, r.message.message_id))
                continue
            pacer = self.pacers.get(r.occ.channel)
            if pacer is not None:
                pacer.wait()
            began = time.perf_counter()
            outcome = self.decider.deliver(r.occ, r.rep.state, r.rep.rules, now, r.message)
            if self.on_deliver is not None:
                self.on_deliver(r.occ.channel, time.perf_counter() - began, outcome)
            if outcome.retryable:
                outcome = self._retry_or_fail(r.row, outcome, now)
            done.append((r.row, outcome, r.message.message_id))
        return done, unsent

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

    def settle(self, conn: Connection, handed: Handed, now: datetime) -> list[Outcome]:
        """Record a sent batch once its adapters made it durable: decisions, occurrences,
        sends, a provider's opt-outs, and sends given back (stopping) pending again.
        Returns the batch's outcomes, those refused at the claim first."""
        done, unsent, by_account = handed.done, handed.unsent, handed.by_account
        synced = self.decider.synced([o for _, o, _ in done], handed.marks)
        done = [(r, o, m) for (r, _, m), o in zip(done, synced, strict=True)]
        with conn.begin():
            if done:
                self.connector.settled(
                    conn,
                    [(r.id, o.record) for r, o, _ in done],
                    [Moved.of(r.id, o) for r, o, _ in done],
                    [(m, send_status(str(o.record.decision)), o.provider_id) for _, o, m in done],
                    now,
                )
            for _, o, _ in done:
                if o.opt_out:  # the provider refused: the recipient opted out there
                    owner = by_account.get(o.record.account)
                    facts.opt_out(
                        conn,
                        debtor_id=o.record.debtor,
                        account_id=o.record.account,
                        channel=o.record.channel or "sms",
                        contact_index=owner.phone_index if owner else None,
                        source="provider",
                        at=now,
                    )
            if unsent:
                _give_back(conn, unsent, now)
        return [*handed.refused, *(o for _, o, _ in done)]


def _give_back(conn: Connection, unsent: Sequence[tuple[Row[Any], str]], now: datetime) -> None:
    """Sends claimed but never handed over (stopping): pending again, their ``sending``
    rows deleted; the next dispatch takes them up."""
    conn.execute(
        occurrence_t.update()
        .where(
            occurrence_t.c.id.in_([r.id for r, _ in unsent]),
            occurrence_t.c.state == "sending",
        )
        .values(state="pending", lease_until=None, updated_at=now)
    )
    conn.execute(
        send_t.delete().where(
            send_t.c.message_id.in_([m for _, m in unsent]), send_t.c.status == "sending"
        )
    )


def retry_wait(policy: RetryPolicy, attempt: int) -> timedelta:
    """How long to wait before attempt ``attempt + 1``: tenacity's exponential backoff
    from ``backoff`` up to ``max_backoff``, with jitter if the policy asks for it."""
    initial = policy.backoff.delta.total_seconds()
    cap = policy.max_backoff.delta.total_seconds()
    strategy = (
        wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial)
        if policy.jitter
        else wait_exponential(multiplier=initial, max=cap)
    )
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
