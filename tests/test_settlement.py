"""Settlements: pay part of the balance by a date and the rest is waived.

The offer never exceeds the authority (the creditor's ``settlement.max_discount``, what
it may waive, the policy's cap), whatever the balance and its breakdown; the checks the
page, the API and scenarios share refuse anything beyond it; the engine settles an
account whose settlement is paid by its deadline and resumes collection on the whole
balance when it is not, identically in ``simulate`` (here) and the daemon
(``test_ebill``); STOP, disputes and cease still win. The page itself, its form token
and its idempotency are ``test_ebill``'s.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ROOT  # noqa: I001

from orchestrator.config.loading import check_config
from orchestrator.config.models import Duration, SettlementOffers, SettlementWaives
from orchestrator.core.bounds import settlement_problem
from orchestrator.core.ebill import (
    settlement_authority,
    settlement_offer,
    settlement_open,
    settlement_waivable,
)
from orchestrator.core.records import DecisionRecord
from orchestrator.core.rules import RuleBook
from orchestrator.errors import InputError
from orchestrator.simulation.events import ScenarioEvent
from orchestrator.simulation.scenario import load_scenario
from orchestrator.testing import ACME, account, event, make_config, minimal_templates, simulate

CENT = Decimal("0.01")
TODAY = date(2026, 3, 10)

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000000"), places=2)
part = st.one_of(st.none(), st.decimals(min_value=0, max_value=Decimal("10000000"), places=2))
share = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.9999"), places=4)


@st.composite
def terms(draw: st.DrawFn) -> SettlementOffers:
    return SettlementOffers(
        max_discount=draw(share),
        waives=draw(st.sampled_from(list(SettlementWaives))),
        pay_within=Duration(draw(st.integers(0, 366)), "d"),
        min_amount=draw(st.one_of(st.none(), money)),
    )


@settings(max_examples=400, deadline=None)
@given(
    offers=terms(),
    cap=st.one_of(st.none(), st.decimals(min_value=0, max_value=Decimal("0.9999"), places=4)),
    balance=money,
    parts=st.tuples(part, part, part),
    max_days_ahead=st.integers(0, 3660),
)
def test_the_offer_never_exceeds_the_authority(
    offers: SettlementOffers,
    cap: Decimal | None,
    balance: Decimal,
    parts: tuple[Decimal | None, Decimal | None, Decimal | None],
    max_days_ahead: int,
) -> None:
    offer = settlement_offer(offers, cap, balance, parts, TODAY, max_days_ahead)
    waivable = settlement_waivable(offers, cap, balance, parts)
    assert waivable >= 0 and waivable == waivable.quantize(CENT)
    if offer is None:
        assert waivable == 0
        return
    principal, interest, fees = parts
    assert offer.waived == waivable > 0
    assert offer.amount + offer.waived == balance  # what is paid and waived is the balance
    assert offer.amount > 0
    assert offer.waived <= balance * offers.max_discount  # the creditor's authority
    if cap is not None:
        assert offer.waived <= balance * cap  # the policy's cap
    if offers.waives == SettlementWaives.interest_and_fees:
        assert offer.waived <= (interest or 0) + (fees or 0)  # 减免: never the principal
        if principal is not None:
            assert offer.amount >= principal
    if offers.min_amount is not None:
        assert offer.amount >= offers.min_amount
    days = min(offers.pay_within.amount, max_days_ahead)
    assert offer.pay_by == TODAY + timedelta(days=days)

    # The offer passes the check every edge applies; a cent more waived does not.
    def problem(amount: Decimal, due: date) -> str | None:
        return settlement_problem(
            amount=amount,
            due=due,
            made_on=TODAY,
            balance=balance,
            waivable=waivable,
            pay_within=days,
        )

    assert problem(offer.amount, offer.pay_by) is None
    assert problem(offer.amount - CENT, offer.pay_by) is not None
    assert problem(offer.amount, offer.pay_by + timedelta(days=1)) is not None


def test_who_is_offered_one_stage_and_days_past_due() -> None:
    offers = SettlementOffers.model_validate(
        {"max_discount": "30%", "stages": ["M3", "M3+"], "min_days_past_due": 70}
    )
    assert settlement_open(offers, "M3", 70) and settlement_open(offers, "M3+", 400)
    assert not settlement_open(offers, "M3", 69)  # not yet
    assert not settlement_open(offers, "M2", 70)  # not in its stages
    anyone = SettlementOffers(max_discount=Decimal("0.1"))
    assert settlement_open(anyone, None, 1)
    assert not settlement_open(anyone, "M0", 0)  # not past due: nothing to settle
    none = settlement_authority(None, None, Decimal(100), (None, None, None), ("M3", 80), 30)
    assert none == (Decimal("0.00"), 0)  # no settlement: configured


def test_interest_and_fees_only_needs_the_breakdown() -> None:
    offers = SettlementOffers.model_validate({"max_discount": "50%", "waives": "interest_and_fees"})
    balance = Decimal("1000.00")
    assert settlement_waivable(offers, None, balance, (None, None, None)) == 0
    assert settlement_waivable(offers, None, balance, (Decimal(900), Decimal(60), Decimal(40))) == (
        Decimal("100.00")
    )
    # A payment since the import: the principal is still paid in full.
    assert settlement_waivable(
        offers, None, Decimal("950.00"), (Decimal(900), Decimal(60), Decimal(40))
    ) == Decimal("50.00")


def _book(policy: dict[str, Any]) -> RuleBook:
    return RuleBook(
        make_config(policy={"hours": {"default": {"start": "08:00", "end": "21:00"}}, **policy})
    )


def test_the_policy_cap_only_tightens() -> None:
    ny = account()  # New York, US
    assert _book({}).for_account(ny).settlement_cap is None
    loose = {"settlements": {"max_discount": "40%"}}
    assert _book(loose).for_account(ny).settlement_cap == Decimal("0.4")
    overlays = {
        "settlements": {"max_discount": "40%"},
        "jurisdictions": {
            "US": {"settlements": {"max_discount": "60%"}},  # cannot loosen the policy's
            "US-NY": {"settlements": {"max_discount": "15%"}},
        },
    }
    rules = _book(overlays).for_account(ny)
    assert rules.settlement_cap == Decimal("0.15")
    offers = SettlementOffers.model_validate({"max_discount": "30%"})
    balance = Decimal("200.00")
    assert settlement_waivable(offers, rules.settlement_cap, balance, (None, None, None)) == (
        Decimal("30.00")
    )


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('{max_discount: "130%"}', "max_discount must be above 0% and below 100%, got 130.00%"),
        ("{max_discount: 0}", "max_discount must be above 0% and below 100%, got 0.00%"),
        ('{max_discount: "lots%"}', 'expected a percentage like "30%" or a share like 0.30'),
        ('{max_discount: "20%", waives: principal}', "'balance' or 'interest_and_fees'"),
        ('{max_discount: "20%", pay_within: 12h}', "pay_within must be 0d to 366d"),
        ('{max_discount: "20%", discount: "10%"}', "discount"),
        ("{waives: balance}", "max_discount"),
    ],
)
def test_config_errors_name_the_file_line_and_field(cfg: Path, value: str, says: str) -> None:
    path = cfg / "creditors.yaml"
    text = path.read_text(encoding="utf-8")
    shipped = (
        'settlement: {max_discount: "20%", waives: balance, stages: [M3, "M3+"], pay_within: 14d}'
    )
    assert shipped in text
    path.write_text(text.replace(shipped, f"settlement: {value}"), encoding="utf-8")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if shipped in t)
    found = [str(p) for p in check_config(cfg, ROOT / "templates") if p.level == "error"]
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:{line}:"), found
    assert "creditors.acme.settlement" in found[0] and says in found[0], found


def test_a_policy_cap_of_100_percent_and_an_unknown_stage(cfg: Path) -> None:
    policy = cfg / "policy.yaml"
    text = policy.read_text(encoding="utf-8")
    policy.write_text(text.replace('max_discount: "50%"', 'max_discount: "100%"'), "utf-8")
    found = [str(p) for p in check_config(cfg, ROOT / "templates") if p.level == "error"]
    assert len(found) == 1 and "settlements.max_discount" in found[0], found
    assert "from 0% to below 100%" in found[0]
    policy.write_text(text, "utf-8")
    creditors = cfg / "creditors.yaml"
    creditors.write_text(
        creditors.read_text("utf-8").replace('stages: [M3, "M3+"]', "stages: [M3, M4]"), "utf-8"
    )
    problems = check_config(cfg, ROOT / "templates")
    assert [p for p in problems if p.level == "error"] == []
    warned = [str(p) for p in problems if p.level == "warning"]
    assert any("settlement: unknown stage 'M4'" in w for w in warned), warned


# --- the engine (simulate; the daemon: test_ebill) ------------------------------------------

STAGES = [
    {
        "id": "M2",
        "dpd": [31, 400],
        "steps": [
            {"id": "sms", "channel": "sms", "template": "reminder", "every": "1d", "at": "10:00"}
        ],
    }
]
TRIGGERS = [
    {"id": "thanks", "on": "payment_received", "channel": "sms", "template": "payment_thanks"},
    {"id": "broken", "on": "promise_broken", "channel": "sms", "template": "promise_broken"},
]
START = "2026-03-23T00:00:00Z"  # the account is 31 days past due (due 2026-02-20)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    return minimal_templates(tmp_path / "templates")


def _run(templates: Path, *events: ScenarioEvent, days: int = 12) -> list[DecisionRecord]:
    config = make_config(
        stages=STAGES,
        triggers=TRIGGERS,
        creditors={"acme": {**ACME, "settlement": {"max_discount": "20%"}}},
    )
    return simulate(
        config,
        [account()],
        list(events),
        start=START,
        days=days,
        templates=templates,
    )


def _daily(records: list[DecisionRecord]) -> list[tuple[str, str, str | None]]:
    return [(r.time.date().isoformat(), r.decision, r.reason) for r in records if r.step == "sms"]


def test_a_settlement_paid_by_its_deadline_settles_the_account(templates: Path) -> None:
    records = _run(
        templates,
        event("2026-03-23T15:00:00Z", "A1", "settlement", amount="200.00", due="2026-03-27"),
        event("2026-03-24T16:00:00Z", "A1", "payment", amount="150.00"),
        event("2026-03-26T16:00:00Z", "A1", "payment", amount="50.00"),  # 200 by the 27th
    )
    daily = _daily(records)
    assert daily[0] == ("2026-03-23", "sent", None)  # before the settlement
    assert {(d, r) for _, d, r in daily[1:4]} == {("suppressed", "promise_pending")}
    assert daily[4:] and {(d, r) for _, d, r in daily[4:]} == {("suppressed", "settled")}
    thanks = [r for r in records if r.step == "thanks"]
    assert [r.decision for r in thanks] == ["sent", "sent"]  # service still goes
    assert not [r for r in records if r.step == "broken"]


def test_a_settlement_not_paid_by_its_deadline_lapses(templates: Path) -> None:
    records = _run(
        templates,
        event("2026-03-23T15:00:00Z", "A1", "settlement", amount="200.00", due="2026-03-27"),
        event("2026-03-24T16:00:00Z", "A1", "payment", amount="150.00"),
        event("2026-03-30T16:00:00Z", "A1", "payment", amount="50.00"),  # too late
    )
    daily = _daily(records)
    # Broken at the end of the 27th + 1 day of grace: collection resumes on the balance.
    after = [(d, r) for day, d, r in daily if day >= "2026-03-29"]
    assert after and after[0] == ("sent", None)
    assert [r.decision for r in records if r.step == "broken"][-1] == "sent"
    assert ("suppressed", "settled") not in {(d, r) for _, d, r in daily}
    rendered = [r.text for r in records if r.step == "sms" and r.decision == "sent"]
    assert rendered[-1] is not None and "$50.00" in rendered[-1]  # 250 - 150 - 50: no waiver


@pytest.mark.parametrize(
    ("blocker", "reason"),
    [
        ({"type_": "dispute"}, "disputed"),
        ({"type_": "cease"}, "cease"),
        ({"type_": "opt_out", "channel": "sms"}, "opted_out"),
    ],
)
def test_stop_dispute_and_cease_still_win(
    templates: Path, blocker: dict[str, str], reason: str
) -> None:
    kind = blocker.pop("type_")
    records = _run(
        templates,
        event("2026-03-23T15:00:00Z", "A1", "settlement", amount="200.00", due="2026-03-27"),
        event("2026-03-23T15:30:00Z", "A1", kind, **blocker),
        days=3,
    )
    after = [(d, r) for day, d, r in _daily(records) if day > "2026-03-23"]
    assert after and set(after) == {("suppressed", reason)}  # never promise_pending


def test_a_scenario_settlement_beyond_the_authority_is_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    base = """
start: "2026-05-01T00:00:00Z"
days: 2
accounts:
  - {account_id: A1, name: Jane Doe, phone: "+12125550100", country: US, region: NY,
     currency: USD, balance: "1000.00", due_date: "2026-01-15", creditor: acme}
events:
  - {at: "2026-05-01T14:00:00Z", account: A1, type: settlement, amount: "AMOUNT",
     due: "2026-05-10"}
"""
    scenario.write_text(base.replace("AMOUNT", "799.99"), "utf-8")
    where = {"config_dir": ROOT / "config", "templates_dir": ROOT / "templates"}
    with pytest.raises(InputError) as raised:
        load_scenario(scenario, **where)
    message = str(raised.value)
    assert "bad settlement event" in message and "more than 200.00" in message
    scenario.write_text(base.replace("AMOUNT", "800.00"), "utf-8")
    assert load_scenario(scenario, **where).events[0].type == "settlement"
