"""The self-service e-bill behind a pay link: see what is owed, pay, promise, choose
a plan or accept a settlement (``/p/<token>``).

A creditor with ``plans:`` or ``settlement:`` in creditors.yaml has an e-bill: a
person's browser that follows a live pay link of one of its open accounts gets the page
(the click recorded as a redirect's is); anything else (an expired link, a script, a
creditor without either, an account paid off) is answered as before (``services.links``).

A settlement is offered where the creditor's ``settlement:`` takes the account (its
stages, days past due, an authority left after the policy's cap) and nothing stands in
its way: no plan running, no promise pending, no dispute, cease or placement, no
settlement made before (kept, pending or lapsed: the page offers one once).

A choice posted from the page is recorded exactly as the REST API records it
(``services.events.record_event``: the same bounds, events, suppression, reminders and
audit), with ``self_service`` as its source, once per link and choice (its
idempotency key), and only with the form token of its link (``core.ebill.form_token``).
A forged link records nothing (404), an expired one records nothing and says where to
pay (410), a form without its token records nothing (403).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from orchestrator.config.models import Creditor
from orchestrator.core.account import Account
from orchestrator.core.ebill import (
    SELF_SERVICE,
    PlanOffer,
    SettlementOffer,
    form_token,
    form_token_ok,
    plan_offers,
    promise_range,
    settlement_offer,
    settlement_open,
)
from orchestrator.core.links import PAY
from orchestrator.core.planner import dpd_on
from orchestrator.core.state import AccountState
from orchestrator.store import facts, idempotency
from orchestrator.store.accounts import account_from_row
from orchestrator.store.replay import Facts, load_facts, replay
from orchestrator.web.ebillpage import EBill, Notice, day, money, render_bill, text
from orchestrator.web.linkpages import PayHelp, pay_help_page
from orchestrator.web.schemas import EventIn, InstalmentIn
from orchestrator.web.server import Server
from orchestrator.web.services.events import record_event
from orchestrator.web.services.links import Link, is_click, open_link, record_click
from orchestrator.web.services.refusals import Invalid

__all__ = ["Page", "choose", "show_bill"]


@dataclass(frozen=True)
class Page:
    """An HTML page and its status."""

    html: str
    status: int = 200


@dataclass(frozen=True)
class _Bill:
    account: Account
    creditor: Creditor
    bill: EBill  # what the page shows
    offers: tuple[PlanOffer, ...]  # every plan offered on this balance today
    settlement: SettlementOffer | None  # the settlement offered on this balance today
    open_to: frozenset[str]  # the choices the account may make now (promise, plan, settlement)


def show_bill(server: Server, token: str, *, method: str, user_agent: str | None) -> str | None:
    """The e-bill page of a live pay link whose creditor offers one, recording the click
    if it is one (``links.is_click``); ``None``: answer as a pay link always did.
    ``Unknown`` for a link that is not ours."""
    link = open_link(server, token, PAY)
    now = server.clock.now()
    if link.data.expired(now):
        return None
    with server.db.connect() as conn:
        found = _bill(server, conn, link, token)
    if found is None:
        return None
    if is_click(method, user_agent, link.data, now):
        with server.tx() as conn:
            record_click(conn, link.send, now)
    return render_bill(found.bill)


def choose(server: Server, token: str, fields: dict[str, str]) -> Page:
    """Record the choice posted from a link's page; the page to answer, with the
    confirmation or the reason it was refused (nothing recorded then)."""
    link = open_link(server, token, PAY)
    now = server.clock.now()
    with server.db.connect() as conn:
        found = _bill(server, conn, link, token)
        expired = link.data.expired(now)
        if expired or found is None:  # nothing to choose here: where to pay instead
            account, creditor = _account_of(server, conn, link)
            help_ = PayHelp(creditor, account.reference or account.account_id, expired=expired)
            return Page(pay_help_page(account.locale, help_), 410)
    t = text(found.account.locale or "")
    if not form_token_ok(server.settings.secret_key or "", token, fields.get("form")):
        return Page(render_bill(found.bill, Notice(t["refused"], (t["bad_form"],), True)), 403)
    try:
        event, done = _event(found, fields)
    except Invalid as exc:
        return Page(render_bill(found.bill, _refusal(t, exc)), 422)
    choice = fields["choice"]
    key = f"{SELF_SERVICE}:{link.data.message_id}:{choice}"
    if choice not in found.open_to and not _recorded(server, key):  # a repeat passes
        return Page(render_bill(found.bill, Notice(t["refused"], (t["not_now"],), True)), 409)
    try:
        record_event(
            server, found.account.account_id, event, key, SELF_SERVICE, source=SELF_SERVICE
        )
    except Invalid as exc:
        if exc.reason != "key_reused":
            return Page(render_bill(found.bill, _refusal(t, exc)), 422)
        done = Notice(t["done_before"], (t["done_before_line"],))
    return Page(render_bill(found.bill, done, choices=False))


def _recorded(server: Server, key: str) -> bool:
    with server.db.connect() as conn:
        return idempotency.first_answer(conn, key) is not None


def _refusal(t: dict[str, str], exc: Invalid) -> Notice:
    return Notice(t["refused"], (str(exc.detail),), error=True)


def _account_of(server: Server, conn: Any, link: Link) -> tuple[Account, Creditor | None]:
    row = facts.account_row(conn, link.send.account_id)
    assert row is not None  # a send's account is never deleted (foreign key)
    account = account_from_row(row, server.cipher)
    return account, server.config.creditor(account.creditor)


def _bill(server: Server, conn: Any, link: Link, token: str) -> _Bill | None:
    """What the page of this link shows, if its creditor offers one and the account
    is open with a balance."""
    row = facts.account_row(conn, link.send.account_id)
    assert row is not None
    creditor = server.config.creditor(row.creditor)
    if creditor is None or row.status != "open" or row.balance <= 0:
        return None
    if creditor.plans is None and creditor.settlement is None:
        return None
    now = server.clock.now()
    rep = replay(row, server.cipher, server.runner.decider.rules, _facts(server, conn, row), now)
    account, rules, state = rep.state.account, rep.rules, rep.state
    today = now.astimezone(rules.zones.primary).date()
    offers: tuple[PlanOffer, ...] = ()
    if creditor.plans is not None:
        offers = tuple(plan_offers(creditor.plans, rules.plan_bounds, account.balance, today))
    settlement = _settlement(creditor, rules, account, today)
    standing = _standing(state, account)
    broken = sum(plan.broken_at is not None for plan in state.plans)
    open_to = {"promise", "plan", "settlement"} if standing is None else set()
    if creditor.plans is None or broken > creditor.plans.reoffers:
        open_to.discard("plan")
    if (
        settlement is None
        or any(p.settlement for p in state.promises)  # offered once
        or state.disputed
        or state.ceased
        or state.placed is not None
    ):
        open_to.discard("settlement")
    bill = EBill(
        locale=account.locale,
        creditor_name=creditor.name,
        creditor_phone=creditor.phone,
        debtor_name=account.name,
        reference=account.reference or account.account_id,
        currency=account.currency,
        balance=account.balance,
        due_date=account.due_date,
        parts=(
            ("principal", account.principal),
            ("interest", account.interest),
            ("fees", account.fees),
        ),
        action=f"/p/{token}",
        pay_href=f"/p/{token}/pay",
        form=form_token(server.settings.secret_key or "", token),
        promise=(
            promise_range(rules.promise_bounds, account.balance, today)
            if "promise" in open_to
            else None
        ),
        offers=offers if "plan" in open_to else (),
        settlement=settlement if "settlement" in open_to else None,
        standing=standing,
        pay_amount=_pay_amount(state),
        settled=state.settled is not None,
    )
    return _Bill(account, creditor, bill, offers, settlement, frozenset(open_to))


def _settlement(
    creditor: Creditor, rules: Any, account: Account, today: date
) -> SettlementOffer | None:
    """The settlement the creditor offers this account today, whatever its state (the
    choices open say whether it is shown)."""
    terms = creditor.settlement
    if terms is None:
        return None
    dpd = dpd_on(account.due_date, today)
    stage = rules.cadences.stage_for(dpd)
    if not settlement_open(terms, stage.id if stage is not None else None, dpd):
        return None
    return settlement_offer(
        terms,
        rules.settlement_cap,
        account.balance,
        (account.principal, account.interest, account.fees),
        today,
        rules.promise_bounds.max_days_ahead,
    )


def _pay_amount(state: AccountState) -> Decimal | None:
    """What "pay" asks for, where it is not the balance: a pending settlement's amount
    less what has been paid toward it."""
    pending = state.pending_settlement()
    if pending is None:
        return None
    return max(pending.amount - pending.paid, Decimal("0.00"))


def _facts(server: Server, conn: Any, row: Any) -> Facts:
    return load_facts(conn, [row], server.clock.now(), server.cipher)[row.account_id]


def _standing(state: AccountState, account: Account) -> Notice | None:
    """What the account has agreed already and still holds: a plan running (its next
    instalment) or a promise pending; ``None``: nothing, every choice is open."""
    t, loc, cur = text(account.locale or ""), account.locale, account.currency
    if state.settled is not None:
        return Notice(t["settled"], (t["settled_line"],))
    pending = state.pending_settlement()
    if pending is not None:
        line = t["settlement_line"].format(
            amount=money(pending.amount, cur, loc),
            due=day(pending.due, loc),
            waived=money(pending.waived or Decimal(0), cur, loc),
        )
        return Notice(t["settlement_pending"], (line, t["settlement_lapse"]))
    upcoming = state.next_instalment()
    if upcoming is not None:
        line = t["plan_next"].format(
            amount=money(upcoming.amount - upcoming.paid, cur, loc), due=day(upcoming.due, loc)
        )
        return Notice(t["plan_running"], (line,))
    promise = state.pending_promise()
    if promise is not None:
        line = t["promise_line"].format(
            amount=money(promise.amount, cur, loc), due=day(promise.due, loc)
        )
        return Notice(t["promise_pending"], (line,))
    return None


def _event(found: _Bill, fields: dict[str, str]) -> tuple[EventIn, Notice]:
    """The API event of a posted choice, and the confirmation to show once recorded;
    ``Invalid`` if the form does not make one."""
    choice = fields.get("choice")
    if choice == "plan":
        offer = _offer(found.offers, fields.get("offer"))
        return _plan_event(found, offer)
    if choice == "settlement":
        return _settlement_event(found, fields.get("amount"))
    if choice == "promise":
        due, amount = _date(fields.get("due")), _amount(fields.get("amount"))
        try:
            event = EventIn(type="promise", due=due, amount=amount)
        except ValidationError:
            raise Invalid("the amount must be positive, with at most 2 decimals", "form") from None
        loc, t = found.account.locale, text(found.account.locale or "")
        line = t["promise_done_line"].format(
            amount=money(amount, found.account.currency, loc), due=day(due, loc)
        )
        return event, Notice(t["promise_done"], (line, t["confirm_sent"]))
    raise Invalid("choose to promise a payment, a plan or the settlement", "form")


def _settlement_event(found: _Bill, shown: str | None) -> tuple[EventIn, Notice]:
    """The settlement offered today, if it is the one the page showed (``shown``, its
    amount: a balance changed since would change the offer)."""
    offer = found.settlement
    if offer is None or _amount(shown) != offer.amount:
        raise Invalid("this settlement is not offered today: open the link again", "form")
    event = EventIn(type="settlement", amount=offer.amount, due=offer.pay_by)
    loc, cur, t = found.account.locale, found.account.currency, text(found.account.locale or "")
    line = t["settlement_line"].format(
        amount=money(offer.amount, cur, loc),
        due=day(offer.pay_by, loc),
        waived=money(offer.waived, cur, loc),
    )
    return event, Notice(t["settlement_done"], (line, t["settlement_lapse"], t["confirm_sent"]))


def _plan_event(found: _Bill, offer: PlanOffer) -> tuple[EventIn, Notice]:
    event = EventIn(
        type="plan",
        instalments=[InstalmentIn(due=due, amount=amount) for due, amount in offer.instalments],
    )
    loc, t = found.account.locale, text(found.account.locale or "")
    line = t["plan_done_line"].format(
        count=offer.count,
        amount=money(offer.amount, found.account.currency, loc),
        first=day(offer.first_due, loc),
    )
    return event, Notice(t["plan_done"], (line, t["confirm_sent"]))


def _offer(offers: tuple[PlanOffer, ...], chosen: str | None) -> PlanOffer:
    for offer in offers:
        if offer.id == chosen:
            return offer
    raise Invalid("that plan is not offered today: choose one of the plans shown", "form")


def _date(value: str | None) -> date:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise Invalid("the date must be a date (YYYY-MM-DD)", "form") from None


def _amount(value: str | None) -> Decimal:
    try:
        amount = Decimal((value or "").strip().replace(",", ""))
    except InvalidOperation:
        raise Invalid("the amount must be a number", "form") from None
    if not amount.is_finite():
        raise Invalid("the amount must be a number", "form")
    return amount
