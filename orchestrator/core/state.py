"""Account state as the engine sees it: promises, plans, payments, events, opt-outs,
and the history of sends that limits count.

Pure values and pure transitions: applying a payment or a promise returns the trigger
events it causes; nothing here reads a clock or a database. The daemon loads these
from the database, ``simulate`` keeps them in memory; both hand them to the same gate.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from orchestrator.config.models import TriggerEvent
from orchestrator.core.account import Account
from orchestrator.core.besttime import HourBook
from orchestrator.core.zones import Zones


@dataclass
class PromiseState:
    promise_id: str
    made_at: datetime
    amount: Decimal
    due: date
    state: str = "pending"  # pending | kept | broken
    paid: Decimal = Decimal("0")
    kept_at: datetime | None = None
    broken_at: datetime | None = None
    # A settlement: what the creditor waives when this promise is kept (the amount is
    # the rest of the balance); ``None``: a plain promise.
    waived: Decimal | None = None

    @property
    def settlement(self) -> bool:
        return self.waived is not None


@dataclass
class InstalmentState:
    index: int
    due: date
    amount: Decimal
    paid: Decimal = Decimal("0")

    @property
    def settled(self) -> bool:
        return self.paid >= self.amount


@dataclass
class PlanState:
    plan_id: str
    started_at: datetime
    instalments: list[InstalmentState]
    broken_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.broken_at is None and not all(i.settled for i in self.instalments)


@dataclass(frozen=True)
class EventRecord:
    """An account event that pauses or suppresses: conversation, complaint, dispute, ..."""

    time: datetime
    type: str
    channel: str | None = None


# Delivery statuses that mean a message reached the person (or their voicemail), and
# those that mean the person answered it (a call picked up, a payment link followed).
REACHED = frozenset({"delivered", "answered", "machine", "opened", "clicked"})
RESPONDED = frozenset({"answered", "clicked"})


@dataclass
class Contact:
    """A message sent to the account, with what its provider said of it and when: what
    segment rules on contact and responsiveness read (kept only where they are used)."""

    time: datetime
    channel: str
    message_id: str
    statuses: list[tuple[datetime, str]] = field(default_factory=list)

    def reached_at(self, before: datetime) -> datetime | None:
        """When a status said it reached the person, if one did before ``before``."""
        times = [at for at, status in self.statuses if status in REACHED and at < before]
        return min(times) if times else None

    def responded(self, before: datetime) -> bool:
        return any(status in RESPONDED and at < before for at, status in self.statuses)


@dataclass(frozen=True)
class TriggerFire:
    """A trigger-worthy event: the planner turns it into occurrences."""

    event: TriggerEvent
    time: datetime
    key: str  # unique per account and event, part of the occurrence key
    day: date | None = None  # the event's reference day (promise due, instalment due)
    promise_id: str | None = None
    instalment: int | None = None


@dataclass
class AccountState:
    account: Account
    zones: Zones
    promises: list[PromiseState] = field(default_factory=list)
    plans: list[PlanState] = field(default_factory=list)
    payments: list[tuple[datetime, Decimal]] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    opted_out: set[str] = field(default_factory=set)  # channels
    disputed: bool = False
    ceased: bool = False
    stage: str | None = None
    contacts: list[Contact] = field(default_factory=list)  # only where segments read them
    # What ``at: best`` has learned (shared by the accounts of a planning page or of a
    # simulation; only where a step is planned ``at: best``).
    hours: HourBook | None = None
    # When the US validation notice was handed to its channel (``core.validation``);
    # None: not yet (or it does not apply).
    notice_sent_at: datetime | None = None
    # The collection agency the account is placed with now (``store.placements``), if any.
    placed: str | None = None

    @property
    def closed(self) -> bool:
        return self.account.status == "closed" or self.account.balance <= 0

    def pending_promise(self) -> PromiseState | None:
        for promise in reversed(self.promises):
            if promise.state == "pending":
                return promise
        return None

    @property
    def settled(self) -> PromiseState | None:
        """The settlement kept (paid in full by its deadline), if one was: the account
        is settled, its collection over for good, as a paid account's is."""
        return next((p for p in self.promises if p.settlement and p.state == "kept"), None)

    def pending_settlement(self) -> PromiseState | None:
        promise = self.pending_promise()
        return promise if promise is not None and promise.settlement else None

    def last_kept(self) -> PromiseState | None:
        kept = [p for p in self.promises if p.state == "kept" and p.kept_at is not None]
        return max(kept, key=lambda p: p.kept_at) if kept else None  # type: ignore[arg-type,return-value]

    def active_plan(self) -> PlanState | None:
        for plan in reversed(self.plans):
            if plan.active:
                return plan
        return None

    def plan(self, plan_id: str | None) -> PlanState | None:
        return next((p for p in self.plans if p.plan_id == plan_id), None)

    def promise(self, promise_id: str | None) -> PromiseState | None:
        return next((p for p in self.promises if p.promise_id == promise_id), None)

    # --- transitions ---------------------------------------------------------------------

    def add_promise(
        self, at: datetime, amount: Decimal, due: date, waived: Decimal | None = None
    ) -> list[TriggerFire]:
        """A promise to pay ``amount`` by ``due``; with ``waived``, a settlement: kept,
        it settles the account (``settled``); broken, it lapses as any promise does and
        collection resumes on the whole balance. Either fires the promise's triggers."""
        promise_id = f"p{len(self.promises) + 1}"
        self.promises.append(PromiseState(promise_id, at, amount, due, waived=waived))
        self.events.append(EventRecord(at, "promise_made"))
        return [
            TriggerFire(TriggerEvent.promise_made, at, promise_id, day=due, promise_id=promise_id),
            TriggerFire(TriggerEvent.promise_due, at, promise_id, day=due, promise_id=promise_id),
        ]

    def add_plan(self, at: datetime, instalments: list[tuple[date, Decimal]]) -> list[TriggerFire]:
        """A plan agreed: its confirmation (``plan_made``, the first instalment's context)
        and a reminder before each instalment (``instalment_due``)."""
        plan_id = f"plan{len(self.plans) + 1}"
        states = [InstalmentState(i, due, amount) for i, (due, amount) in enumerate(instalments)]
        self.plans.append(PlanState(plan_id, at, states))
        made = TriggerFire(TriggerEvent.plan_made, at, plan_id, day=states[0].due, instalment=0)
        return [made] + [
            TriggerFire(
                TriggerEvent.instalment_due,
                at,
                f"{plan_id}.{s.index}",
                day=s.due,
                instalment=s.index,
            )
            for s in states
        ]

    def add_payment(self, at: datetime, amount: Decimal, key: str) -> list[TriggerFire]:
        """Apply a payment: balance, promises kept, plan instalments; close when paid."""
        fires: list[TriggerFire] = []
        self.payments.append((at, amount))
        self.events.append(EventRecord(at, "payment"))
        self.account.balance -= amount
        for promise in self.promises:
            if promise.state == "pending" and promise.made_at <= at:
                promise.paid += amount
                if promise.paid >= promise.amount:
                    promise.state = "kept"
                    promise.kept_at = at
                    fires.append(
                        TriggerFire(
                            TriggerEvent.promise_kept,
                            at,
                            promise.promise_id,
                            day=promise.due,
                            promise_id=promise.promise_id,
                        )
                    )
        plan = self.active_plan()
        if plan is not None:
            left = amount
            for inst in plan.instalments:
                if left <= 0:
                    break
                take = min(left, inst.amount - inst.paid)
                if take > 0:
                    inst.paid += take
                    left -= take
        if self.account.balance <= 0:
            self.account.status = "closed"
        fires.append(TriggerFire(TriggerEvent.payment_received, at, key))
        return fires

    def break_promise(self, promise_id: str, at: datetime) -> list[TriggerFire]:
        promise = self.promise(promise_id)
        if promise is None or promise.state != "pending":
            return []
        promise.state = "broken"
        promise.broken_at = at
        return [
            TriggerFire(
                TriggerEvent.promise_broken, at, promise_id, day=promise.due, promise_id=promise_id
            )
        ]

    def check_plan(self, plan_id: str, index: int, at: datetime) -> list[TriggerFire]:
        """An instalment's grace ended: an unpaid one breaks the plan (``plan_broken``,
        with the missed instalment)."""
        for plan in self.plans:
            if plan.plan_id == plan_id and plan.broken_at is None:
                missed = plan.instalments[index]
                if not missed.settled:
                    plan.broken_at = at
                    return [
                        TriggerFire(
                            TriggerEvent.plan_broken, at, plan_id, day=missed.due, instalment=index
                        )
                    ]
        return []

    def next_instalment(self) -> InstalmentState | None:
        """The first unsettled instalment of the active plan, if one is active."""
        plan = self.active_plan()
        if plan is None:
            return None
        return next((i for i in plan.instalments if not i.settled), None)


@dataclass(frozen=True)
class SendRecord:
    time: datetime
    channel: str
    account_id: str
    debtor_id: str
    # A contact a collection agency reported (``agency_contact``), not a send of ours:
    # only limits with ``agency_contacts: true`` count it.
    agency: bool = False


class SendHistory:
    """Sends of one debtor (all accounts), sorted by time, for limits."""

    def __init__(self) -> None:
        self._sends: list[SendRecord] = []
        self._times: list[datetime] = []

    def add(self, record: SendRecord) -> None:
        index = bisect.bisect_right(self._times, record.time)
        self._times.insert(index, record.time)
        self._sends.insert(index, record)

    def since(self, start: datetime, end: datetime) -> list[SendRecord]:
        """Sends with start < time <= end."""
        lo = bisect.bisect_right(self._times, start)
        hi = bisect.bisect_right(self._times, end)
        return self._sends[lo:hi]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._sends)

    def __len__(self) -> int:
        return len(self._sends)
