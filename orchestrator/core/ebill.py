"""The e-bill page's choices (``/p/<token>``): the plans offered, the promise allowed,
and the form token that ties a submitted choice to its link.

Pure: the offers are a function of the creditor's ``plans:`` (``PlanOffers``), the
policy's ``plans:`` and ``promises:`` bounds, the balance and the debtor's local day.
Every offer shown passes the same bounds check the REST API applies
(``bounds.plan_problem``), so a plan chosen on the page is one the API would take.

The form token is an HMAC of the link's token under the server secret, with its own
domain prefix: a form posted to another link's address, or made up, is refused; the
same page can be submitted twice (the choice is idempotent by link and choice).
"""

from __future__ import annotations

import calendar
import hmac
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_UP, Decimal

from orchestrator.config.models import PlanBounds, PlanFrequency, PlanOffers, PromiseBounds
from orchestrator.core.bounds import least_promise, plan_problem

__all__ = [
    "SELF_SERVICE",
    "PlanOffer",
    "PromiseRange",
    "form_token",
    "form_token_ok",
    "plan_offers",
    "promise_range",
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
