"""The small pages a person sees at ``/p/`` and ``/u/`` when there is nowhere to redirect.

A debtor who taps an old payment link (or one whose creditor has no pay page) must
still learn where to pay and whom to call, in their language, on any phone: each page
is one self-contained HTML document (inline style, no script, image, font or other
fetch), in en-US or zh-CN by the account's locale. They show the creditor's name,
phone and bank account and the account's reference, never the debtor's name or balance:
whoever holds the link sees the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from orchestrator.config.models import Creditor

_TEXT = {
    "en-US": {
        "pay_title": "How to pay",
        "expired": "This payment link has expired.",
        "no_link": "Online payment is not available for this account.",
        "bank": "Pay by bank transfer to:",
        "reference": "Reference:",
        "call": "Questions? Call {name} at {phone}.",
        "nobody": "Please contact the company that wrote to you.",
        "unsub_title": "Unsubscribe",
        "unsub_old": "This unsubscribe link is too old to use.",
        "unsub_call": "To stop our emails, call {name} at {phone}.",
        "missing_title": "Link not found",
        "missing": "This link is not valid. Please check the message you received.",
    },
    "zh-CN": {
        "pay_title": "还款方式",
        "expired": "此还款链接已过期。",
        "no_link": "此账户暂不支持在线还款。",
        "bank": "请通过银行转账还款至：",
        "reference": "参考编号：",
        "call": "如有疑问，请致电{name}：{phone}。",
        "nobody": "请联系向您发送消息的公司。",
        "unsub_title": "退订",
        "unsub_old": "此退订链接已失效。",
        "unsub_call": "如需停止接收我们的邮件，请致电{name}：{phone}。",
        "missing_title": "链接无效",
        "missing": "此链接无效，请核对您收到的消息。",
    },
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;"
    "padding:0 1rem;line-height:1.5;color:#222}h1{font-size:1.4rem}"
)


def page_locale(locale: str | None) -> str:
    """The page language for an account's locale: Chinese for any ``zh``, else English."""
    return "zh-CN" if (locale or "").lower().startswith("zh") else "en-US"


@dataclass(frozen=True)
class PayHelp:
    """What the pay page says: the creditor (if the account has one) and the reference."""

    creditor: Creditor | None
    reference: str
    expired: bool


def pay_help_page(locale: str | None, help_: PayHelp) -> str:
    """Where to pay and whom to call, for a pay link with no pay page to go to."""
    lang = page_locale(locale)
    t = _TEXT[lang]
    lines = [t["expired"] if help_.expired else t["no_link"]]
    creditor = help_.creditor
    if creditor is not None and creditor.bank_account:
        lines += [t["bank"], f"<b>{escape(creditor.bank_account)}</b>"]
    lines.append(f"{t['reference']} <b>{escape(help_.reference)}</b>")
    lines.append(_call(t, "call", creditor))
    return _document(lang, t["pay_title"], lines)


def unsubscribe_too_old_page(locale: str | None, creditor: Creditor | None) -> str:
    lang = page_locale(locale)
    t = _TEXT[lang]
    return _document(lang, t["unsub_title"], [t["unsub_old"], _call(t, "unsub_call", creditor)])


def not_found_page() -> str:
    """A forged or mangled link: no account is known, so both languages."""
    en, zh = _TEXT["en-US"], _TEXT["zh-CN"]
    return _document("en-US", en["missing_title"], [en["missing"], zh["missing"]])


def _call(t: dict[str, str], key: str, creditor: Creditor | None) -> str:
    if creditor is None:
        return escape(t["nobody"])
    phone = escape(creditor.phone)
    return escape(t[key]).format(
        name=escape(creditor.name), phone=f'<a href="tel:{phone}">{phone}</a>'
    )


def _document(lang: str, title: str, lines: list[str]) -> str:
    body = "".join(f"<p>{line}</p>" for line in lines)
    return (
        f'<!doctype html><html lang="{lang}"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style>"
        f"<h1>{escape(title)}</h1>{body}</html>"
    )
