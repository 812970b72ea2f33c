"""Sane bounds on what comes in from outside: dates, instants, promises and plans.

Every edge checks its values here before anything is written (the CSV imports, the REST
API, the payment webhook, scenario files), so the engine only meets dates it can do
arithmetic on (a promise due 0001-01-01 made the planner's ``date - 2 days`` overflow)
and promises and plans a creditor would take (``policy.yaml`` ``promises:`` and
``plans:``). Each check returns the problem as a sentence for whoever sent the value,
or ``None``. What gets past anyway (older rows, SQL by hand) the runner survives
(``orchestrator.dispatch.baddata``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_UP, Decimal

from orchestrator.config.models import PlanBounds, PromiseBounds

__all__ = [
    "AMOUNT_LIMIT",
    "EARLIEST_DUE_DATE",
    "EARLIEST_INSTANT",
    "FUTURE_LEEWAY",
    "LATEST_DATE",
    "LATEST_INSTANT",
    "due_date_problem",
    "instant_problem",
    "plan_problem",
    "promise_problem",
    "settlement_problem",
]

# An account's due date: debts sold on or revived can be decades old, so the floor is far
# back; nothing is due after the end of this century.
EARLIEST_DUE_DATE = date(1900, 1, 1)
LATEST_DATE = date(2100, 12, 31)
# A payment's or an event's instant: none before the Unix epoch, and none later than a
# day from now (a provider's clock, a day-end batch: a payment not yet made is not one).
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC)
FUTURE_LEEWAY = timedelta(days=1)
# Money is NUMERIC(18, 2): an amount or balance must stay below 10^16.
AMOUNT_LIMIT = Decimal("1e16")
_CENT = Decimal("0.01")


def due_date_problem(due: date) -> str | None:
    """An account's due date outside 1900-01-01 to 2100-12-31."""
    if EARLIEST_DUE_DATE <= due <= LATEST_DATE:
        return None
    return f"due date {due.isoformat()} is outside {EARLIEST_DUE_DATE} to {LATEST_DATE}"


def instant_problem(at: datetime, latest: datetime) -> str | None:
    """A payment's or an event's instant before 1970 or after ``latest`` (now plus
    ``FUTURE_LEEWAY`` where there is a now)."""
    if at < EARLIEST_INSTANT:
        return f"{at.isoformat()} is before {EARLIEST_INSTANT:%Y-%m-%d}"
    if at > latest:
        return f"{at.isoformat()} is later than {latest.isoformat()}"
    return None


def least_promise(bounds: PromiseBounds, balance: Decimal) -> Decimal:
    """The smallest promise taken on ``balance`` (short of one that pays all of it)."""
    share = ((bounds.min_share_of_balance or 0) * balance).quantize(_CENT, ROUND_UP)
    return max(bounds.min_amount or Decimal(0), share)


def promise_problem(
    bounds: PromiseBounds, *, amount: Decimal, due: date, made_on: date, balance: Decimal
) -> str | None:
    """A promise of ``amount`` due on ``due``, made on the debtor's local day ``made_on``
    while the account owes ``balance``, outside the bounds (``PromiseBounds``)."""
    if amount <= 0:
        return f"the promise's amount must be positive, got {amount}"
    if due < made_on:
        return f"the promise is due {due}, before the day it is made ({made_on})"
    if (due - made_on).days > bounds.max_days_ahead:
        return (
            f"the promise is due {due}, more than {bounds.max_days_ahead} days after the "
            f"day it is made ({made_on}) (policy promises.max_days_ahead)"
        )
    least = least_promise(bounds, balance)
    if amount < least and amount < balance:
        return (
            f"the promise of {amount} is less than {least}, the least taken on a balance "
            f"of {balance} (policy promises.min_amount, min_share_of_balance), and does "
            f"not pay the whole balance"
        )
    return None


def settlement_problem(
    *,
    amount: Decimal,
    due: date,
    made_on: date,
    balance: Decimal,
    waivable: Decimal,
    pay_within: int,
) -> str | None:
    """A settlement paying ``amount`` by ``due`` (the rest of ``balance`` waived), made on
    the debtor's local day ``made_on``, beyond the authority: ``waivable`` is the most
    that may be waived on this account now (``core.ebill.settlement_waivable``, zero
    where none is offered), ``pay_within`` the most days it may be due in."""
    if amount <= 0:
        return f"the settlement's amount must be positive, got {amount}"
    if amount >= balance:
        return (
            f"a settlement pays less than the balance ({balance}), got {amount}: "
            f"a promise pays all of it"
        )
    if waivable <= 0:
        return (
            "no settlement may be offered on this account now (creditors.yaml "
            "settlement: stages, min_days_past_due, waives; policy settlements.max_discount)"
        )
    waived = balance - amount
    if waived > waivable:
        return (
            f"the settlement of {amount} waives {waived}, more than {waivable}, the most "
            f"that may be waived on a balance of {balance} (creditors.yaml "
            f"settlement.max_discount, waives, min_amount; policy settlements.max_discount): "
            f"pay at least {balance - waivable}"
        )
    if due < made_on:
        return f"the settlement is due {due}, before the day it is made ({made_on})"
    if (due - made_on).days > pay_within:
        return (
            f"the settlement is due {due}, more than {pay_within} days after the day it "
            f"is made ({made_on}) (creditors.yaml settlement.pay_within, policy "
            f"promises.max_days_ahead)"
        )
    return None


def plan_problem(
    bounds: PlanBounds,
    *,
    instalments: Sequence[tuple[date, Decimal]],
    made_on: date,
    balance: Decimal,
) -> str | None:
    """A plan of ``instalments`` (due date, amount), agreed on the debtor's local day
    ``made_on`` while the account owes ``balance``, outside the bounds (``PlanBounds``)."""
    dues = sorted(instalments)
    if not dues:
        return "a plan needs its instalments (due, amount)"
    if len(dues) > bounds.max_instalments:
        return (
            f"the plan has {len(dues)} instalments, more than {bounds.max_instalments} "
            f"(policy plans.max_instalments)"
        )
    if dues[0][0] < made_on:
        return (
            f"the first instalment is due {dues[0][0]}, before the day the plan is "
            f"agreed ({made_on})"
        )
    return _gap_problem(bounds, dues, made_on) or _amount_problem(bounds, dues, balance)


def _gap_problem(bounds: PlanBounds, dues: list[tuple[date, Decimal]], made_on: date) -> str | None:
    previous, since = made_on, "the day the plan is agreed"
    for due, _ in dues:
        gap = (due - previous).days
        if gap > bounds.max_days_between:
            return (
                f"the instalment due {due} comes {gap} days after {since} ({previous}), "
                f"more than {bounds.max_days_between} (policy plans.max_days_between)"
            )
        previous, since = due, "the instalment before it"
    return None


def _amount_problem(
    bounds: PlanBounds, dues: list[tuple[date, Decimal]], balance: Decimal
) -> str | None:
    for due, amount in dues:
        if amount <= 0:
            return f"the instalment due {due} must be of a positive amount, got {amount}"
    least = bounds.min_instalment
    if least is None:
        return None
    pays_all = sum((amount for _, amount in dues), Decimal(0)) >= balance
    for index, (due, amount) in enumerate(dues):
        remainder = index == len(dues) - 1 and pays_all
        if amount < least and not remainder:
            return (
                f"the instalment due {due} of {amount} is less than {least} (policy "
                f"plans.min_instalment; only a last one paying the rest of the balance "
                f"may be smaller)"
            )
    return None
