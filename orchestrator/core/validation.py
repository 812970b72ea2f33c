"""The US validation notice (Reg F 1006.34): when it is planned, what it holds back, and
the facts it states.

Where the account's rules carry a ``validation_notice`` (the policy's, or a jurisdiction's
or creditor profile's), an account that has not had it gets it at once: on each local day
until it has gone, one occurrence of step ``validation_notice`` (kind ``notice``) planned
at the first instant of the day (from the run's start on) its channel's hours permit,
expiring at the day's end, judged by the gate like any send. Until it has been handed to its channel, every collection send of the
account is ``blocked`` with reason ``validation_pending``. Pure: no clock, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from orchestrator.config.models import Kind
from orchestrator.core.hours import first_permitted, local_day_start
from orchestrator.core.planner import Occurrence, dpd_on
from orchestrator.core.segments import balance_at

if TYPE_CHECKING:
    from orchestrator.core.rules import AccountRules
    from orchestrator.core.state import AccountState

VALIDATION_STEP = "validation_notice"


def plan_notice(
    state: AccountState, rules: AccountRules, local_day: date, since: datetime | None = None
) -> Occurrence | None:
    """The notice's occurrence on ``local_day`` for an open account that has not had it,
    planned at the first instant of the day, from ``since`` on (the run's start,
    go-live), that the channel's hours and holidays permit in every candidate zone."""
    notice = rules.validation_notice
    if notice is None or state.notice_sent_at is not None or state.closed:
        return None
    zone = rules.zones.primary
    start = local_day_start(local_day, zone)
    end = local_day_start(local_day + timedelta(days=1), zone)
    planned = first_permitted(
        start if since is None else max(start, since),
        rules.hours_for(notice.channel),
        rules.zones.candidates,
        rules.holidays_for(notice.channel),
    )
    if planned is None or planned >= end:
        return None  # no permitted hour left that day (a holiday): the next day's turn
    stage = rules.cadences.stage_for(dpd_on(state.account.due_date, local_day))
    return Occurrence(
        account_id=state.account.account_id,
        step_id=VALIDATION_STEP,
        key=local_day.isoformat(),
        stage=stage.id if stage is not None else None,
        channel=notice.channel,
        template=notice.template,
        kind=Kind.notice,
        planned_at=planned,
        expires_at=end,
    )


def is_notice(occ: Occurrence) -> bool:
    return occ.step_id == VALIDATION_STEP and occ.trigger is None


def pending(occ: Occurrence, state: AccountState, rules: AccountRules) -> bool:
    """A collection send the notice must precede, and the notice has not gone."""
    return (
        occ.kind == Kind.collection
        and state.notice_sent_at is None
        and rules.validation_notice is not None
    )


@dataclass(frozen=True)
class NoticeFacts:
    """What the notice states (the template's ``validation``): the itemization of the debt
    since the itemization date, and the validation period."""

    itemization_date: date  # the account's due date
    itemization_amount: Decimal  # owed on the itemization date
    interest: Decimal  # charged since (not known separately here: 0)
    fees: Decimal
    payments: Decimal  # paid since
    credits: Decimal
    current_amount: Decimal
    sent_on: date
    period_start: date  # the assumed receipt: the period starts then
    period_end: date  # the last day to dispute, or to ask for the original creditor


def notice_facts(state: AccountState, rules: AccountRules, now: datetime) -> NoticeFacts:
    """The facts of a notice sent at ``now`` (the account's local dates)."""
    notice = rules.validation_notice
    receipt = notice.assumed_receipt.delta if notice is not None else timedelta(days=5)
    period = notice.period.delta if notice is not None else timedelta(days=30)
    zone = rules.zones.primary
    account = state.account
    then = balance_at(state, local_day_start(account.due_date, zone))
    sent_on = now.astimezone(zone).date()
    start = sent_on + receipt
    zero = Decimal("0.00")
    return NoticeFacts(
        itemization_date=account.due_date,
        itemization_amount=then,
        interest=zero,
        fees=zero,
        payments=max(then - account.balance, zero),
        credits=zero,
        current_amount=account.balance,
        sent_on=sent_on,
        period_start=start,
        period_end=start + period,
    )
