"""Shipped fakes and builders for tests: configs from dicts, accounts, events, a minimal
template set, and a one-call simulation. Tests read like the contract with these.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from orchestrator.clock import FrozenClock, VirtualClock
from orchestrator.config.models import Config
from orchestrator.core.account import Account
from orchestrator.core.records import DecisionRecord
from orchestrator.simulation.events import ScenarioEvent
from orchestrator.simulation.simulate import Scenario, Simulation

__all__ = [
    "FrozenClock",
    "VirtualClock",
    "account",
    "event",
    "make_config",
    "minimal_templates",
    "simulate",
    "utc",
]

ACME = {
    "name": "Acme Consumer Finance",
    "phone": "+18005550100",
    "bank_account": "Acme Consumer Finance, 6222 0000 1234 5678",
    "pay_url": "https://pay.example.com/acme/{reference}",
    "letter_deadline": "10d",
}


def utc(text: str) -> datetime:
    """``utc("2026-03-02T15:00")`` → an aware UTC datetime."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def make_config(
    *,
    stages: list[dict[str, Any]] | None = None,
    triggers: list[dict[str, Any]] | None = None,
    policy: dict[str, Any] | None = None,
    creditors: dict[str, Any] | None = None,
) -> Config:
    channels = {c: {"adapter": "simulated"} for c in ("sms", "voice", "email", "letter")}
    return Config.model_validate(
        {
            "cadences": {"stages": stages or [], "triggers": triggers or []},
            "policy": policy or {"hours": {"default": {"start": "08:00", "end": "21:00"}}},
            "channels": channels,
            "creditors": {"creditors": creditors or {"acme": ACME}},
        }
    )


def account(account_id: str = "A1", **fields: Any) -> Account:
    """A US account in New York, due 2026-02-20, with sensible defaults."""
    values: dict[str, Any] = {
        "name": "Jane Doe",
        "phone": "+12125550100",
        "email": "jane@example.com",
        "address_line1": "1 Main Street",
        "city": "New York",
        "region": "NY",
        "country": "US",
        "currency": "USD",
        "balance": Decimal("250.00"),
        "due_date": date(2026, 2, 20),
        "locale": "en-US",
        "creditor": "acme",
        "reference": f"REF-{account_id}",
    }
    values.update(fields)
    if isinstance(values["balance"], str):
        values["balance"] = Decimal(values["balance"])
    if isinstance(values["due_date"], str):
        values["due_date"] = date.fromisoformat(values["due_date"])
    return Account(account_id=account_id, **values)


def event(at: str, account_id: str, type_: str, **data: Any) -> ScenarioEvent:
    if "amount" in data:
        data["amount"] = Decimal(str(data["amount"]))
    if "due" in data and isinstance(data["due"], str):
        data["due"] = date.fromisoformat(data["due"])
    if "instalments" in data:
        data["instalments"] = [
            {"due": date.fromisoformat(str(i["due"])), "amount": Decimal(str(i["amount"]))}
            for i in data["instalments"]
        ]
    return ScenarioEvent(utc(at), account_id, type_, data)


_MINIMAL = {
    "sms": "txt",
    "voice": "txt",
    "email": "html",
    "letter": "html",
}


def minimal_templates(directory: Path, names: list[str] | None = None) -> Path:
    """One tiny template per channel and name, enough for engine tests."""
    names = names or [
        "reminder",
        "overdue",
        "final_notice",
        "promise_reminder",
        "promise_broken",
        "payment_thanks",
        "reminder_letter",
        "demand_letter",
        "final_demand",
    ]
    for channel, ext in _MINIMAL.items():
        folder = directory / channel
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            body = f"{name}: {{{{ creditor.name }}}} {{{{ account.balance | money(account.currency) }}}}"
            if channel == "email":
                body = f"---\nsubject: {name}\n---\n<p>{body}</p>"
            (folder / f"{name}.{ext}.j2").write_text(body, encoding="utf-8")
    return directory


def simulate(
    config: Config,
    accounts: list[Account],
    events: list[ScenarioEvent] | None = None,
    *,
    start: str,
    days: int,
    templates: Path,
) -> list[DecisionRecord]:
    scenario = Scenario(utc(start), days, config, templates, accounts, events or [])
    return list(Simulation(scenario).run())
