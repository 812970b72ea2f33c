"""Account events (promise, payment, plan, conversation, inbound text, opt-out, dispute,
cease, complaint, delivery, click) applied to engine state, with the triggers they fire.

Used by ``simulate`` for scenario events; the daemon and the HTTP server change the same
state through the same transitions in ``orchestrator.core.state``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from orchestrator.config.models import AUTOMATED_CHANNELS, Kind
from orchestrator.core.hours import local_day_start
from orchestrator.core.keywords import (
    CONFIRMATION_WINDOW,
    HELP_REPLY,
    OPT_OUT_CONFIRMATION,
    InboundKind,
    classify_inbound,
    reply_text,
)
from orchestrator.core.planner import plan_fire
from orchestrator.core.records import DecisionKind, DecisionRecord, iso_local
from orchestrator.core.state import AccountState, EventRecord, SendRecord, TriggerFire
from orchestrator.dispatch.decider import message_id_for

if TYPE_CHECKING:
    from orchestrator.simulation.simulate import Simulation

EVENT_TYPES = (
    "promise",
    "settlement",
    "payment",
    "conversation",
    "inbound_sms",
    "opt_out",
    "opt_in",
    "dispute",
    "dispute_resolved",
    "cease",
    "complaint",
    "plan",
    "delivery",
    "click",
    "placed",
    "recalled",
    "agency_contact",
)


@dataclass(frozen=True)
class ScenarioEvent:
    at: datetime
    account: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


class EventApplier:
    def __init__(self, sim: Simulation):
        self.sim = sim
        self._payments = 0
        self._last_confirmation: dict[str, datetime] = {}
        self.timeline: list[tuple[datetime, str, str, dict[str, Any]]] = []
        self._latest: dict[tuple[str, str | None], DecisionRecord] = {}

    def note_send(self, record: DecisionRecord) -> None:
        self._latest[(record.account, record.channel)] = record

    def _break_promise(self, state: AccountState, promise_id: str, at: datetime) -> None:
        self._fire(state, state.break_promise(promise_id, at))

    def _check_plan(self, state: AccountState, plan_id: str, index: int, at: datetime) -> None:
        self._fire(state, state.check_plan(plan_id, index, at))

    def _fire(self, state: AccountState, fires: list[TriggerFire]) -> None:
        rules = self.sim.rules[state.account.account_id]
        for fire in fires:
            self.sim.schedule(plan_fire(state, rules, fire))

    def _same_contact(self, state: AccountState, channel: str) -> list[AccountState]:
        """Every account reached at the same number (``sms``, ``voice``) or address
        (``email``), whichever debtor it belongs to, as the daemon's contact-keyed
        opt-outs reach them; for a letter, or an account without that contact, this one."""
        account = state.account
        key = (
            account.phone
            if channel in ("sms", "voice")
            else account.email
            if channel == "email"
            else None
        )
        if not key:
            return [state]
        return self.sim.by_contact[key]

    def apply(self, event: ScenarioEvent, now: datetime) -> Iterator[DecisionRecord]:
        state = self.sim.states[event.account]
        rules = self.sim.rules[event.account]
        zone = rules.zones.primary
        data = event.data
        self.timeline.append((now, event.account, event.type, data))
        kind = event.type
        if kind in ("promise", "settlement"):
            due: date = data["due"]
            amount = Decimal(str(data["amount"]))
            # A settlement waives the rest of the balance it is made on, if it is kept.
            waived = state.account.balance - amount if kind == "settlement" else None
            self._fire(state, state.add_promise(now, amount, due, waived))
            promise_id = state.promises[-1].promise_id
            grace_end = local_day_start(due + timedelta(days=1), zone) + rules.promise_grace
            self.sim.deadline(
                max(grace_end, now),
                partial(self._break_promise, state, promise_id),
            )
        elif kind == "payment":
            self._payments += 1
            key = str(data.get("payment_id") or f"pay{self._payments}")
            self._fire(state, state.add_payment(now, Decimal(str(data["amount"])), key))
        elif kind == "plan":
            items = [(i["due"], Decimal(str(i["amount"]))) for i in data["instalments"]]
            self._fire(state, state.add_plan(now, items))
            plan = state.plans[-1]
            for inst in plan.instalments:
                end = local_day_start(inst.due + timedelta(days=1), zone) + rules.promise_grace
                self.sim.deadline(
                    max(end, now),
                    partial(self._check_plan, state, plan.plan_id, inst.index),
                )
        elif kind in ("conversation", "complaint"):
            state.events.append(EventRecord(now, kind, data.get("channel")))
        elif kind == "dispute":
            state.disputed = True
            state.events.append(EventRecord(now, "dispute", data.get("channel")))
        elif kind == "dispute_resolved":
            state.disputed = False
        elif kind == "cease":
            state.ceased = True
        elif kind == "placed":
            state.placed = str(data["agency"])
        elif kind == "recalled":
            state.placed = None
        elif kind == "agency_contact":
            account = state.account
            self.sim.histories[account.debtor_id].add(
                SendRecord(now, str(data["channel"]), account.account_id, account.debtor_id, True)
            )
        elif kind == "opt_out":
            for other in self._same_contact(state, data["channel"]):
                other.opted_out.add(data["channel"])
        elif kind == "opt_in":
            for other in self._same_contact(state, data["channel"]):
                other.opted_out.discard(data["channel"])
        elif kind == "inbound_sms":
            yield from self._inbound(state, str(data.get("body", "")), now)
        elif kind in ("delivery", "click") and state.contacts:
            self._receipt(state, kind, data, now)

    @staticmethod
    def _receipt(state: AccountState, kind: str, data: dict[str, Any], now: datetime) -> None:
        """A delivery receipt for the latest message of its channel, or a click on the
        latest message with a payment link (a text or an email), as the daemon stores
        them: what segment rules on contact and responsiveness read."""
        channels = (data.get("channel"),) if kind == "delivery" else ("sms", "email")
        latest = next((c for c in reversed(state.contacts) if c.channel in channels), None)
        if latest is not None:
            latest.statuses.append((now, str(data["status"]) if kind == "delivery" else "clicked"))

    def _inbound(self, state: AccountState, body: str, now: datetime) -> Iterator[DecisionRecord]:
        policy = self.sim.decider.config.policy
        what = classify_inbound(body, policy.revocations)
        sharing = self._same_contact(state, "sms")
        phone = state.account.phone or ""
        if what in (InboundKind.opt_out, InboundKind.revocation):
            # In their own words, the person may mean calls or texts: both stop.
            stopped = AUTOMATED_CHANNELS if what == InboundKind.revocation else {"sms"}
            for other in sharing:
                other.opted_out.update(stopped)
            if policy.opt_out_confirmation:
                last = self._last_confirmation.get(phone)
                if last is None or now - last > CONFIRMATION_WINDOW:
                    self._last_confirmation[phone] = now
                    yield self._notice(sharing, OPT_OUT_CONFIRMATION, now)
        elif what == InboundKind.opt_in:
            for other in sharing:
                other.opted_out.difference_update(policy.opt_out_channels("sms"))
        elif what == InboundKind.help:
            yield self._notice(sharing, HELP_REPLY, now)

    def _notice(self, sharing: list[AccountState], step: str, now: datetime) -> DecisionRecord:
        """A reply to the person's own text: exempt from hours and limits (docs/http.md)."""
        target = min(sharing, key=lambda s: s.account.account_id)
        account = target.account
        rules = self.sim.rules[account.account_id]
        text = reply_text(step, self.sim.decider.config.creditor(account.creditor), account.locale)
        message_id = message_id_for(account.account_id, step, now.isoformat())
        history = self.sim.histories[account.debtor_id]
        history.add(SendRecord(now, "sms", account.account_id, account.debtor_id))
        return DecisionRecord(
            time=now,
            local_time=iso_local(now, rules.zones.primary),
            account=account.account_id,
            debtor=account.debtor_id,
            stage=None,
            step=step,
            channel="sms",
            kind=str(Kind.notice),
            decision=DecisionKind.sent,
            message_id=message_id,
            to=account.phone,
            text=text,
        )
