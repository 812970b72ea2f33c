"""What ``outreach templates lint`` asks of a US validation notice template (Reg F
1006.34): the facts the notice must state, each found in the text rendered with the
sample data. A template is a notice template when it is named ``validation_notice`` or
named by a ``validation_notice`` of the policy (base, jurisdiction or profile)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency

from orchestrator.config.models import Config
from orchestrator.content.rendering import babel_locale
from orchestrator.core.validation import VALIDATION_STEP


def notice_templates(config: Config) -> set[tuple[str, str]]:
    """(channel, template name) of every validation notice, the shipped one included."""
    out = {("letter", VALIDATION_STEP), ("email", VALIDATION_STEP)}
    policy = config.policy
    overlays = [*policy.jurisdictions.values(), *policy.profiles.values()]
    for notice in [policy.validation_notice, *(o.validation_notice for o in overlays)]:
        if notice is not None:
            out.add((notice.channel, notice.template))
    return out


def missing_facts(ctx: dict[str, Any], text: str, locale: str) -> list[str]:
    """What a notice rendered as ``text`` from the sample context ``ctx`` leaves out."""
    where = babel_locale(locale)
    facts, account = ctx["validation"], ctx["account"]

    def dates(day: date) -> list[str]:
        return [day.isoformat()] + [
            format_date(day, f, locale=where) for f in ("short", "medium", "long", "full")
        ]

    def money(amount: Decimal) -> list[str]:
        return [format_currency(amount, account.currency, locale=where)]

    required: list[tuple[str, list[str]]] = [
        ("the debtor's name ({{ debtor.name }})", [ctx["debtor"].name]),
        ("the creditor's name ({{ creditor.name }})", [ctx["creditor"].name]),
        ("the reference number ({{ account.reference }})", [str(account.reference)]),
        ("the itemization date ({{ validation.itemization_date }})", dates(facts.itemization_date)),
        (
            "the amount owed on the itemization date ({{ validation.itemization_amount }})",
            money(facts.itemization_amount),
        ),
        ("the payments since ({{ validation.payments }})", money(facts.payments)),
        ("the amount owed now ({{ validation.current_amount }})", money(facts.current_amount)),
        ("the end of the validation period ({{ validation.period_end }})", dates(facts.period_end)),
        ("how to dispute the debt (the word 'dispute')", ["dispute"]),
        ("how to ask for the original creditor ('original creditor')", ["original creditor"]),
        ("the creditor's contact ({{ creditor.phone }})", [ctx["creditor"].phone]),
    ]
    folded = text.casefold()
    return [
        what
        for what, values in required
        if not any(v and str(v).casefold() in folded for v in values)
    ]
