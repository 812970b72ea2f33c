"""What a message looks like before anyone receives it: sample data, a real account's
data, and the HTML and PDF files of ``outreach templates preview``.

The sample data is the same ``outreach templates lint`` renders with: an American
debtor for English locales and a Chinese one for Chinese, every optional field filled
(so every ``{% if %}`` branch that shows something is exercised), and a "sparse"
variant with the optional fields empty. Building a context is pure; writing files and
printing a PDF (WeasyPrint, imported only when a PDF is asked for) are the edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from channels.pdf import write_pdf
from orchestrator.config.models import Config, Creditor
from orchestrator.content.rendering import Rendered, build_context, locale_chain
from orchestrator.core.account import Account
from orchestrator.core.links import LINK_LIFETIME, pay_link, unsubscribe_link
from orchestrator.core.planner import dpd_on

SAMPLE_URL = "http://127.0.0.1:8000"
SAMPLE_SECRET = "preview-only"  # sample links are well-formed but not honoured by a server
SAMPLE_TODAY = date(2026, 3, 6)
SAMPLE_MESSAGE_ID = "m_" + "5a" * 12

_US_CREDITOR = {
    "name": "Acme Consumer Finance",
    "phone": "+18005550100",
    "bank_account": "Acme Consumer Finance, 6222 0000 1234 5678",
    "pay_url": "https://pay.example.com/acme/{reference}",
    "address": "100 Main Street, Boston, MA 02110",
    "email": "billing@acme.example.com",
    "complaints": "complaints@acme.example.com or the CFPB at consumerfinance.gov",
}
_CN_CREDITOR = {
    "name": "华夏消费金融",
    "phone": "+864008205555",
    "bank_account": "华夏消费金融有限公司 6222 0210 0000 1234",
    "pay_url": "https://pay.example.com/huaxia/{reference}",
    "address": "上海市浦东新区世纪大道100号",
    "email": "service@huaxia.example.cn",
    "complaints": "400-820-5555",
    "letter_deadline": "10d",
}


def is_chinese(locale: str | None) -> bool:
    return bool(locale) and locale_chain(locale)[-1] == "zh"


def sample_account(locale: str | None) -> Account:
    """A debtor 95 days past due on ``SAMPLE_TODAY``, owing 1,234.50."""
    common: dict[str, Any] = {
        "account_id": "A-SAMPLE",
        "balance": Decimal("1234.50"),
        "due_date": SAMPLE_TODAY - timedelta(days=95),
        "reference": "REF-2026-000123",
        "creditor": "sample",
        "locale": locale,
    }
    if is_chinese(locale):
        return Account(
            name="张伟",
            currency="CNY",
            phone="+8613800138000",
            email="zhangwei@example.cn",
            address_line1="北京市朝阳区建国路88号",
            city="北京",
            postal_code="100022",
            country="CN",
            **common,
        )
    return Account(
        name="Jane Doe",
        currency="USD",
        phone="+12125550123",
        email="jane@example.com",
        address_line1="1 Main Street",
        city="New York",
        region="NY",
        postal_code="10001",
        country="US",
        **common,
    )


def sample_creditor(
    locale: str | None, *, debt_collector: bool = False, sparse: bool = False
) -> Creditor:
    fields = dict(_CN_CREDITOR if is_chinese(locale) else _US_CREDITOR)
    if sparse:
        fields = {"name": fields["name"], "phone": fields["phone"]}
    return Creditor.model_validate({**fields, "debt_collector": debt_collector})


@dataclass(frozen=True)
class Variant:
    """One set of sample data: the creditor's kind and whether optional fields are set."""

    name: str
    debt_collector: bool = False
    sparse: bool = False


VARIANTS = (
    Variant("creditor"),
    Variant("debt collector", debt_collector=True),
    Variant("sparse", sparse=True),  # no links, promise, deadline or optional creditor fields
)


def sample_context(
    locale: str | None,
    variant: Variant = VARIANTS[0],
    *,
    creditor: Creditor | None = None,
    public_url: str = SAMPLE_URL,
    channel: str = "email",
) -> dict[str, Any]:
    """The template context for the sample account in ``locale``."""
    account = sample_account(locale)
    chosen = creditor or sample_creditor(
        locale, debt_collector=variant.debt_collector, sparse=variant.sparse
    )
    config = Config.model_validate({"creditors": {"creditors": {"sample": chosen.model_dump()}}})
    return _context(
        account,
        config,
        today=SAMPLE_TODAY,
        locale=locale or "en-US",
        channel=channel,
        public_url=public_url,
        secret=SAMPLE_SECRET,
        message_id=SAMPLE_MESSAGE_ID,
        sparse=variant.sparse,
        sample=True,
    )


def account_context(
    account: Account,
    config: Config,
    *,
    today: date,
    channel: str,
    locale: str | None = None,
    public_url: str = SAMPLE_URL,
    secret: str | None = None,
    message_id: str = SAMPLE_MESSAGE_ID,
) -> dict[str, Any]:
    """The context the engine would build for this account today (for previews)."""
    return _context(
        account,
        config,
        today=today,
        locale=locale or account.locale or "en-US",
        channel=channel,
        public_url=public_url,
        secret=secret or SAMPLE_SECRET,
        message_id=message_id,
        sparse=False,
    )


def _context(
    account: Account,
    config: Config,
    *,
    today: date,
    locale: str,
    channel: str,
    public_url: str,
    secret: str,
    message_id: str,
    sparse: bool,
    sample: bool = False,
) -> dict[str, Any]:
    creditor = config.creditor(account.creditor)
    expires = datetime(today.year, today.month, today.day, tzinfo=UTC) + LINK_LIFETIME
    dpd = dpd_on(account.due_date, today)
    stage = config.cadences.stage_for(dpd)
    deadline = today + creditor.letter_deadline.delta if creditor is not None else None
    return build_context(
        account,
        config,
        today=today,
        dpd=dpd,
        stage=stage.id if stage is not None else None,
        pay_link=None if sparse else pay_link(public_url, secret, message_id, expires),
        unsubscribe_link=None
        if sparse or channel != "email"
        else unsubscribe_link(public_url, secret, message_id, expires),
        promise=None if sparse else {"amount": Decimal("300.00"), "due": today + timedelta(3)},
        instalment=None,
        deadline=None if sparse else deadline,
        locale=locale,
        validation=sample_validation(account, today, paid=Decimal("100.00") if sample else None),
    )


def sample_validation(account: Account, today: date, *, paid: Decimal | None) -> dict[str, Any]:
    """The validation notice's facts for an account sent its notice ``today``, as
    ``core.validation.notice_facts`` gives them (assumed receipt 5 days, period 30), with
    ``paid`` since the due date (sample data; none for a real account's preview): the
    notice's template must show them (the engine sets them for the notice only)."""
    zero = Decimal("0.00")
    paid = paid or zero
    return {
        "itemization_date": account.due_date,
        "itemization_amount": account.balance + paid,
        "interest": zero,
        "fees": zero,
        "payments": paid,
        "credits": zero,
        "current_amount": account.balance,
        "sent_on": today,
        "period_start": today + timedelta(days=5),
        "period_end": today + timedelta(days=35),
    }


# --- files ---------------------------------------------------------------------------------


def preview_html(rendered: Rendered, title: str) -> str:
    """The message as an HTML page: its own HTML, or the text of an SMS or call."""
    if rendered.html is not None:
        return rendered.html
    subject = f"<p><strong>{escape(rendered.subject)}</strong></p>\n" if rendered.subject else ""
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n</head>\n<body>\n{subject}"
        '<pre style="white-space:pre-wrap;font-family:sans-serif;max-width:40em;">'
        f"{escape(rendered.text)}</pre>\n</body>\n</html>\n"
    )


@dataclass(frozen=True)
class PreviewFiles:
    html: Path
    pdf: Path | None


def write_preview(
    rendered: Rendered,
    *,
    channel: str,
    name: str,
    locale: str,
    out_dir: Path,
    templates_dir: Path,
) -> PreviewFiles:
    """``<out>/<channel>-<name>.<locale>.html`` and, for a letter, ``.pdf``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{channel}-{name}.{locale}"
    page = preview_html(rendered, f"{channel}/{name} ({locale})")
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(page, encoding="utf-8")
    pdf_path = None
    if channel == "letter":
        pdf_path = write_pdf(
            page, out_dir / f"{stem}.pdf", templates_dir=templates_dir, channel=channel
        )
    return PreviewFiles(html_path, pdf_path)
