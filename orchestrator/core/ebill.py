"""The e-bill page's choices (``/p/<token>``): the plans offered, the promise allowed,
the settlement offered, and the form token that ties a submitted choice to its link.

Pure: the offers are a function of the creditor's ``plans:`` (``PlanOffers``), the
policy's ``plans:`` and ``promises:`` bounds, the balance and the debtor's local day.
Every offer shown passes the same bounds check the REST API applies
(``bounds.plan_problem``, ``bounds.settlement_problem``), so a plan or a settlement
chosen on the page is one the API would take.

A settlement waives part of the balance if the rest is paid by a date: the most it may
waive (``settlement_waivable``) is the creditor's authority (``settlement.max_discount``
of the balance, of interest and fees only where it ``waives: interest_and_fees``), never
more than the policy's cap (``settlements.max_discount``, the smallest of the policy's
and its overlays'), rounded down to the cent. The page offers exactly that.

The form token is an HMAC of the link's token under the server secret, with its own
domain prefix: a form posted to another link's address, or made up, is refused; the
same page can be submitted twice (the choice is idempotent by link and choice).
"""

from __future__ import annotations

import calendar
import hmac
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from orchestrator.config.models import (
    PlanBounds,
    PlanFrequency,
    PlanOffers,
    PromiseBounds,
    SettlementOffers,
    SettlementWaives,
)
from orchestrator.core.bounds import least_promise, plan_problem

__all__ = [
    "SELF_SERVICE",
    "PlanOffer",
    "PromiseRange",
    "SettlementOffer",
    "form_token",
    "form_token_ok",
    "plan_offers",
    "promise_range",
    "settlement_authority",
    "settlement_offer",
    "settlement_open",
    "settlement_waivable",
]

SELF_SERVICE = "self_service"  # the source of a promise or plan made on the e-bill page
_FORM_DOMAIN = b"outreach-ebill-form-v1\x00"
_CENT = Decimal("0.01")
# How many instalments the page offers (up to the creditor's max_instalments, which is
# always offered): a short list a person can choose from on a phone.
_COUNTS = (2, 3, 4, 6, 9, 12, 18, 24, 36, 48, 60)
_STEP_DAYS = {PlanFrequency.weekly: 7, PlanFrequency.biweekly: 14}


@dataclass(frozen=True)
class PlanOffer:
    """One plan the debtor may choose: ``id`` names it in the form (``monthly-3``)."""

    id: str
    frequency: PlanFrequency
    instalments: tuple[tuple[date, Decimal], ...]

    @property
    def count(self) -> int:
        return len(self.instalments)

    @property
    def amount(self) -> Decimal:
        """Each instalment's amount (the last may be smaller: it pays the rest)."""
        return self.instalments[0][1]

    @property
    def first_due(self) -> date:
        return self.instalments[0][0]


@dataclass(frozen=True)
class PromiseRange:
    """A promise the page takes: due from ``first`` to ``last``, at least ``least``."""

    first: date
    last: date
    least: Decimal


def form_token(secret: str, link_token: str) -> str:
    """The token a page's form carries: tied to the link, unforgeable without the secret."""
    if not secret:
        raise ValueError("a form token needs a non-empty secret")
    mac = hmac.new(secret.encode("utf-8"), _FORM_DOMAIN + link_token.encode("utf-8"), "sha256")
    return mac.hexdigest()[:32]


def form_token_ok(secret: str, link_token: str, given: str | None) -> bool:
    if not secret or not given:
        return False
    return hmac.compare_digest(form_token(secret, link_token), given)


def promise_range(bounds: PromiseBounds, balance: Decimal, today: date) -> PromiseRange:
    return PromiseRange(
        first=today,
        last=today + timedelta(days=bounds.max_days_ahead),
        least=min(least_promise(bounds, balance), balance),
    )


def plan_offers(
    offers: PlanOffers, bounds: PlanBounds, balance: Decimal, today: date
) -> list[PlanOffer]:
    """The plans to offer on ``balance`` on the debtor's local day ``today``: for each
    frequency, equal instalments (rounded up to the cent, the last pays the rest), none
    below the creditor's ``min_instalment``, and only those the policy's bounds take."""
    if balance <= 0:
        return []
    most = min(offers.max_instalments, bounds.max_instalments)
    counts = sorted({n for n in _COUNTS if n <= most} | ({most} if most >= 2 else set()))
    out: list[PlanOffer] = []
    for frequency in offers.frequencies:
        for count in counts:
            offer = _offer(offers, frequency, count, balance, today)
            if offer is None:
                continue
            problem = plan_problem(
                bounds, instalments=offer.instalments, made_on=today, balance=balance
            )
            if problem is None:
                out.append(offer)
    return out


def _offer(
    offers: PlanOffers, frequency: PlanFrequency, count: int, balance: Decimal, today: date
) -> PlanOffer | None:
    each = (balance / count).quantize(_CENT, ROUND_UP)
    last = balance - each * (count - 1)
    if last <= 0 or (offers.min_instalment is not None and each < offers.min_instalment):
        return None
    window = offers.first_payment_within.amount
    first = today + timedelta(days=min(window, _STEP_DAYS.get(frequency, window)))
    dues = [_nth_due(frequency, first, k) for k in range(count)]
    amounts = [each] * (count - 1) + [last]
    return PlanOffer(
        f"{frequency.value}-{count}", frequency, tuple(zip(dues, amounts, strict=True))
    )


def _nth_due(frequency: PlanFrequency, first: date, k: int) -> date:
    step = _STEP_DAYS.get(frequency)
    if step is not None:
        return first + timedelta(days=step * k)
    month = first.month - 1 + k
    year, month = first.year + month // 12, month % 12 + 1
    return date(year, month, min(first.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class SettlementOffer:
    """Pay ``amount`` by ``pay_by`` and ``waived`` is written off (``amount + waived``
    is the balance); ``waives``: what the waived amount comes out of."""

    amount: Decimal
    waived: Decimal
    pay_by: date
    waives: SettlementWaives


def settlement_waivable(
    offers: SettlementOffers,
    cap: Decimal | None,
    balance: Decimal,
    parts: tuple[Decimal | None, Decimal | None, Decimal | None],
) -> Decimal:
    """The most a settlement may waive on ``balance`` (``parts``: its principal, interest
    and fees, each ``None`` when unknown): the creditor's ``max_discount`` of the balance,
    no more than the policy's ``cap`` (a share too), only out of interest and fees where
    the creditor ``waives: interest_and_fees`` (nothing when neither is known), leaving
    at least ``min_amount`` to pay; rounded down to the cent, never below zero."""
    if balance <= 0:
        return Decimal("0.00")
    share = offers.max_discount if cap is None else min(offers.max_discount, cap)
    most = (balance * share).quantize(_CENT, ROUND_DOWN)
    principal, interest, fees = parts
    if offers.waives == SettlementWaives.interest_and_fees:
        if interest is None and fees is None:
            return Decimal("0.00")
        most = min(most, (interest or Decimal(0)) + (fees or Decimal(0)))
        if principal is not None:
            most = min(most, balance - principal)
    if offers.min_amount is not None:
        most = min(most, balance - offers.min_amount)
    return max(most, Decimal("0.00")).quantize(_CENT, ROUND_DOWN)


def settlement_open(offers: SettlementOffers, stage: str | None, dpd: int) -> bool:
    """Whether an account in ``stage`` (of cadences.yaml) ``dpd`` days past due may be
    offered the creditor's settlement (its account state is the caller's to check)."""
    if dpd < max(offers.min_days_past_due, 1):
        return False
    return offers.stages is None or stage in offers.stages


def settlement_offer(
    offers: SettlementOffers,
    cap: Decimal | None,
    balance: Decimal,
    parts: tuple[Decimal | None, Decimal | None, Decimal | None],
    today: date,
    max_days_ahead: int,
) -> SettlementOffer | None:
    """The settlement offered on ``balance`` on the debtor's local day ``today``: all the
    creditor may waive, the rest due ``pay_within`` days on (no later than a promise may
    be due: ``max_days_ahead``); ``None`` when nothing may be waived."""
    waived = settlement_waivable(offers, cap, balance, parts)
    if waived <= 0:
        return None
    days = min(offers.pay_within.amount, max_days_ahead)
    return SettlementOffer(balance - waived, waived, today + timedelta(days=days), offers.waives)


def settlement_authority(
    offers: SettlementOffers | None,
    cap: Decimal | None,
    balance: Decimal,
    parts: tuple[Decimal | None, Decimal | None, Decimal | None],
    where: tuple[str | None, int],
    max_days_ahead: int,
) -> tuple[Decimal, int]:
    """What a settlement may be on this account now: the most it may waive and the most
    days it may be due in; ``(0, 0)`` where none is offered (no ``settlement:``, or the
    account is not in its stages, ``where`` being its stage and DPD)."""
    stage, dpd = where
    if offers is None or not settlement_open(offers, stage, dpd):
        return Decimal("0.00"), 0
    waivable = settlement_waivable(offers, cap, balance, parts)
    return waivable, min(offers.pay_within.amount, max_days_ahead)
