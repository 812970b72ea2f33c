"""The e-bill page a debtor sees at ``/p/<token>``, in en-US or zh-CN.

Rendered with our sandboxed Jinja environment (``content.rendering.make_environment``)
from ``pages/ebill.html.j2``: one self-contained document (inline style; no script,
font, image or stylesheet fetched), mobile-first, usable without JavaScript. What it
shows is what ``EBill`` holds: the creditor, the debtor's name, the amounts and the
reference; never the debtor's address, phone or email. Wording lives here, formatting
(money, dates) with Babel in the page's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency

from orchestrator.content.rendering import babel_locale, make_environment
from orchestrator.content.sandbox import render as bounded_render
from orchestrator.core.ebill import PlanOffer, PromiseRange, SettlementOffer
from orchestrator.web.linkpages import page_locale

__all__ = ["EBill", "Notice", "render_bill", "text"]

_PAGES = Path(__file__).with_name("pages")

_TEXT: dict[str, dict[str, str]] = {
    "en-US": {
        "title": "Your bill",
        "hello": "Hello, {name}",
        "owed": "Amount owed",
        "principal": "Principal",
        "interest": "Interest",
        "fees": "Fees",
        "due": "Due date",
        "reference": "Reference",
        "pay_title": "Pay in full",
        "pay_help": "You will go to {name}'s secure payment page.",
        "pay_button": "Pay {amount} now",
        "promise_title": "Promise to pay on a date",
        "promise_date": "Date you will pay",
        "promise_amount": "Amount you will pay",
        "promise_help": "Any date from {first} to {last}.",
        "promise_least": " At least {least}.",
        "promise_button": "Promise to pay",
        "plan_title": "Pay in instalments",
        "plan_legend": "Choose a plan",
        "plan_offer": "{count} {every} payments of {amount}, the first on {first}",
        "weekly": "weekly",
        "biweekly": "every-two-weeks",
        "monthly": "monthly",
        "plan_button": "Set up this plan",
        "questions": "Questions? Call {name}:",
        "promise_done": "Thank you: your promise is recorded",
        "promise_done_line": "You promised to pay {amount} by {due}.",
        "plan_done": "Thank you: your plan is set up",
        "plan_done_line": "{count} payments of {amount}, the first on {first}.",
        "confirm_sent": "We are sending you a confirmation.",
        "done_before": "Your choice is recorded already",
        "done_before_line": "This link has been used to make this choice before.",
        "refused": "We could not record this choice",
        "plan_running": "You have a payment plan",
        "plan_next": "Your next instalment, {amount}, is due on {due}.",
        "promise_pending": "You have promised to pay",
        "promise_line": "{amount} by {due}.",
        "not_now": "This choice is not available for your account now.",
        "bad_form": "This page is out of date. Please open the link from your message again.",
        "settle_title": "Settle for less",
        "settle_offer": "Pay {amount} by {due} and we waive the remaining {waived}.",
        "settle_waives_balance": "The amount waived is part of your balance.",
        "settle_waives_interest_and_fees": "The amount waived is interest and fees: "
        "you pay all of the principal.",
        "settle_button": "Accept: pay {amount} by {due}",
        "settlement_done": "Thank you: your settlement is agreed",
        "settlement_pending": "You have agreed to settle",
        "settlement_line": "Pay {amount} by {due}; {waived} is then waived.",
        "settlement_lapse": "If it is not paid in full by then, the offer lapses and the "
        "whole balance is owed again.",
        "settled": "Your account is settled",
        "settled_line": "Thank you: nothing more is owed on this account.",
    },
    "zh-CN": {
        "title": "您的账单",
        "hello": "{name}，您好",
        "owed": "应还金额",
        "principal": "本金",
        "interest": "利息",
        "fees": "费用",
        "due": "到期日",
        "reference": "参考编号",
        "pay_title": "一次性还清",
        "pay_help": "您将前往{name}的安全还款页面。",
        "pay_button": "立即还款 {amount}",
        "promise_title": "承诺还款日期",
        "promise_date": "还款日期",
        "promise_amount": "还款金额",
        "promise_help": "可选{first}至{last}之间的任一日期。",
        "promise_least": "金额不少于{least}。",
        "promise_button": "提交还款承诺",
        "plan_title": "分期还款",
        "plan_legend": "选择分期方案",
        "plan_offer": "分{count}期，{every}还{amount}，首期{first}",
        "weekly": "每周",
        "biweekly": "每两周",
        "monthly": "每月",
        "plan_button": "确认此分期方案",
        "questions": "如有疑问，请致电{name}：",
        "promise_done": "感谢您：还款承诺已记录",
        "promise_done_line": "您承诺于{due}前还款{amount}。",
        "plan_done": "感谢您：分期方案已设立",
        "plan_done_line": "共{count}期，每期{amount}，首期{first}。",
        "confirm_sent": "确认信息将发送给您。",
        "done_before": "您的选择已记录",
        "done_before_line": "此链接此前已用于提交该选择。",
        "refused": "无法记录此选择",
        "plan_running": "您已有分期还款方案",
        "plan_next": "下期分期款{amount}，于{due}到期。",
        "promise_pending": "您已承诺还款",
        "promise_line": "{due}前还款{amount}。",
        "not_now": "您的账户当前无法进行此选择。",
        "bad_form": "此页面已过期，请重新打开消息中的链接。",
        "settle_title": "减免结清",
        "settle_offer": "于{due}前还款{amount}，剩余{waived}予以减免。",
        "settle_waives_balance": "减免部分为欠款的一部分。",
        "settle_waives_interest_and_fees": "减免部分为利息和费用，本金需全额偿还。",
        "settle_button": "接受：于{due}前还款{amount}",
        "settlement_done": "感谢您：减免结清方案已确认",
        "settlement_pending": "您已接受减免结清方案",
        "settlement_line": "请于{due}前还款{amount}，届时减免{waived}。",
        "settlement_lapse": "如届时未还清，方案失效，仍需偿还全部欠款。",
        "settled": "您的账户已结清",
        "settled_line": "感谢您：此账户已无待还款项。",
    },
}


def text(lang: str) -> dict[str, str]:
    return _TEXT[page_locale(lang)]


@dataclass(frozen=True)
class Notice:
    """A message at the top of the page: a confirmation, or why a choice was refused."""

    title: str
    lines: tuple[str, ...] = ()
    error: bool = False


@dataclass(frozen=True)
class EBill:
    """Everything the page shows (nothing else about the debtor reaches it)."""

    locale: str | None
    creditor_name: str
    creditor_phone: str
    debtor_name: str
    reference: str
    currency: str
    balance: Decimal
    due_date: date
    parts: tuple[tuple[str, Decimal | None], ...]  # principal, interest, fees
    action: str  # where the forms post: /p/<token>
    pay_href: str  # pay in full: /p/<token>/pay
    form: str  # the form token
    promise: PromiseRange | None  # None: no promise is taken now (one is pending, a plan runs)
    offers: tuple[PlanOffer, ...] = field(default=())  # the plans shown
    standing: Notice | None = None  # a promise pending or a plan running
    settlement: SettlementOffer | None = None  # the settlement shown
    pay_amount: Decimal | None = None  # what "pay" asks for, if not the balance
    settled: bool = False  # a settlement was paid: no choice left


def money(amount: Decimal, currency: str, locale: str | None) -> str:
    return format_currency(amount, currency, locale=babel_locale(page_locale(locale)))


def day(value: date, locale: str | None) -> str:
    return format_date(value, format="medium", locale=babel_locale(page_locale(locale)))


def offer_text(offer: PlanOffer, currency: str, locale: str | None) -> str:
    t = text(locale or "")
    return t["plan_offer"].format(
        count=offer.count,
        every=t[offer.frequency.value],
        amount=money(offer.amount, currency, locale),
        first=day(offer.first_due, locale),
    )


def render_bill(bill: EBill, notice: Notice | None = None, *, choices: bool = True) -> str:
    """The page's HTML; ``choices``: show the choices (not after one is made, nor on a
    settled account)."""
    lang = page_locale(bill.locale)
    t = _TEXT[lang]
    loc, cur = bill.locale, bill.currency
    pay = bill.balance if bill.pay_amount is None else bill.pay_amount
    values: dict[str, Any] = {
        "lang": lang,
        "t": t,
        "notice": notice or bill.standing,
        "choices": choices and not bill.settled,
        "creditor_name": bill.creditor_name,
        "creditor_phone": bill.creditor_phone,
        "hello": t["hello"].format(name=bill.debtor_name),
        "owed": money(bill.balance, cur, loc),
        "breakdown": [(t[k], money(v, cur, loc)) for k, v in bill.parts if v is not None],
        "due": day(bill.due_date, loc),
        "reference": bill.reference,
        "pay_href": bill.pay_href,
        "pay_button": t["pay_button"].format(amount=money(pay, cur, loc)),
        "pay_help": t["pay_help"].format(name=bill.creditor_name),
        "action": bill.action,
        "form": bill.form,
        "promise": _promise(bill, t),
        "offers": [{"id": o.id, "text": offer_text(o, cur, loc)} for o in bill.offers],
        "settlement": _settlement(bill, t),
        "questions": t["questions"].format(name=bill.creditor_name),
    }
    return bounded_render(_template(), values)


def _promise(bill: EBill, t: dict[str, str]) -> dict[str, str] | None:
    window = bill.promise
    if window is None:
        return None
    loc = bill.locale
    return {
        "first": window.first.isoformat(),
        "last": window.last.isoformat(),
        "amount": str(bill.balance),
        "help": t["promise_help"].format(first=day(window.first, loc), last=day(window.last, loc))
        + (
            t["promise_least"].format(least=money(window.least, bill.currency, loc))
            if window.least > 0
            else ""
        ),
    }


def _settlement(bill: EBill, t: dict[str, str]) -> dict[str, str] | None:
    offer = bill.settlement
    if offer is None:
        return None
    loc, cur = bill.locale, bill.currency
    amount, due = money(offer.amount, cur, loc), day(offer.pay_by, loc)
    return {
        "amount": str(offer.amount),
        "text": t["settle_offer"].format(
            amount=amount, due=due, waived=money(offer.waived, cur, loc)
        ),
        "waives": t[f"settle_waives_{offer.waives.value}"],
        "lapse": t["settlement_lapse"],
        "button": t["settle_button"].format(amount=amount, due=due),
    }


@lru_cache(maxsize=1)
def _template() -> Any:
    return make_environment(_PAGES, live=False).get_template("ebill.html.j2")
