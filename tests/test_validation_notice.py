"""The US validation notice (Reg F 1006.34): planned at once for an account it applies to,
judged by the gate like any send, holding back collection (``validation_pending``) until
it has gone; a dispute in the period suppresses collection until resolved. ``simulate``
and the daemon's ticks decide the same (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from babel.dates import format_date
from support import ROOT, config_check, line_of, sample_runner  # noqa: I001 - tests/support.py
from test_runner import _assert_ticks_decide, _key  # the differential harness
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.config.loading import load_config
from orchestrator.config.models import Config, Overlay, ValidationNotice
from orchestrator.content.template_lint import lint_templates
from orchestrator.core.account import Account
from orchestrator.core.records import DecisionRecord
from orchestrator.simulation.events import ScenarioEvent
from orchestrator.simulation.sample import generate_accounts
from orchestrator.simulation.simulate import Scenario, Simulation
from orchestrator.testing import event

START = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)
STEP = "validation_notice"


def _with_notice(config: Config, notice: ValidationNotice, *, place: str | None) -> Config:
    """``config`` with the notice in the base policy (``place`` None) or in an overlay of
    that jurisdiction."""
    policy = config.policy
    if place is None:
        policy = policy.model_copy(update={"validation_notice": notice})
    else:
        overlays = dict(policy.jurisdictions)
        base = overlays.get(place, Overlay())
        overlays[place] = base.model_copy(update={"validation_notice": notice})
        policy = policy.model_copy(update={"jurisdictions": overlays})
    return config.model_copy(update={"policy": policy})


def _shipped(notice: ValidationNotice, *, place: str | None = "US") -> Config:
    return _with_notice(load_config(ROOT / "config", ROOT / "templates"), notice, place=place)


def _accounts(n: int) -> list[Account]:
    """The sample portfolio, the first US account with no postal address: its letter
    cannot go, so its collection stays held."""
    accounts = list(generate_accounts(n, today=START.date(), seed=3))
    first_us = next(i for i, a in enumerate(accounts) if a.country == "US")
    accounts[first_us] = dataclasses.replace(
        accounts[first_us], address_line1=None, address_line2=None, city=None, postal_code=None
    )
    return accounts


def _run(
    config: Config, accounts: list[Account], days: int, events: Sequence[ScenarioEvent] = ()
) -> list[DecisionRecord]:
    scenario = Scenario(START, days, config, ROOT / "templates", accounts, list(events))
    return list(Simulation(scenario).run())


def _by_account(records: list[DecisionRecord]) -> dict[str, list[DecisionRecord]]:
    out: dict[str, list[DecisionRecord]] = {}
    for r in records:
        out.setdefault(r.account, []).append(r)
    return out


def test_the_notice_goes_before_any_collection_send() -> None:
    accounts = _accounts(30)
    records = _run(_shipped(ValidationNotice(channel="letter")), accounts, 4)
    by_account = _by_account(records)
    country = {a.account_id: a.country for a in accounts}
    noticed = 0
    for account_id, recs in by_account.items():
        notices = [r for r in recs if r.step == STEP]
        if country[account_id] != "US":  # the notice is the US overlay's
            assert not notices
            continue
        sent = [r for r in notices if r.decision == "sent"]
        collection = [r for r in recs if r.kind == "collection" and r.decision == "sent"]
        if not sent:
            assert not collection, account_id
            continue
        noticed += 1
        assert len(sent) == 1 and sent[0].kind == "notice" and sent[0].channel == "letter"
        assert all(c.time >= sent[0].time for c in collection)
    assert noticed >= 5
    # The account with no address: its letter is blocked, and so is all its collection.
    held = next(a.account_id for a in accounts if a.country == "US")
    recs = by_account[held]
    assert {(r.decision, r.reason) for r in recs if r.step == STEP} == {("blocked", "no_contact")}
    # planned once a local day until it goes: one notice decision a day, every day
    days = [r.local_time[:10] for r in recs if r.step == STEP]
    assert len(days) == len(set(days)) >= 4
    collection = [r for r in recs if r.kind == "collection"]
    assert collection and {(r.decision, r.reason) for r in collection} == {
        ("blocked", "validation_pending")
    }


def test_the_notice_states_the_itemization_and_the_period() -> None:
    accounts = [a for a in _accounts(30) if a.country == "US"][1:4]
    records = _run(
        _shipped(ValidationNotice.model_validate({"assumed_receipt": "5d", "period": "30d"})),
        accounts,
        1,
    )
    notices = [r for r in records if r.step == STEP and r.decision == "sent"]
    assert len(notices) == len(accounts)
    for record, account in zip(
        sorted(notices, key=lambda r: r.account),
        sorted(accounts, key=lambda a: a.account_id),
        strict=True,
    ):
        assert record.subject == f"Notice about your debt - account {account.reference}"
        assert record.text is not None
        text = " ".join(record.text.split())
        sent_on = date.fromisoformat(record.local_time[:10])
        end = format_date(sent_on + timedelta(days=35), "long", locale="en_US")
        assert f"Call or write to us by {end} to dispute all or part of the debt" in text
        due = format_date(account.due_date, "long", locale="en_US")
        assert f"As of {due}, you owed:" in text
        assert "original creditor" in text
        assert f"Total amount of the debt now: ${account.balance:,}" in text


def test_an_email_notice_waits_for_the_permitted_hours() -> None:
    """Planned at the first instant of the day the email hours permit (08:00 local), not
    at midnight (no deferral recorded first); the account's collection goes after it."""
    # Florida and Illinois: the run starts at 01:00 and 00:00 local, in quiet hours
    # (one account per debtor: a debtor's email limit would hold a second notice a day)
    debtors = {a.debtor_id: a for a in _accounts(30) if a.region in ("FL", "IL") and a.email}
    accounts = list(debtors.values())
    assert len(accounts) >= 2
    config = _shipped(ValidationNotice(channel="email"), place=None)
    records = _run(config, accounts, 2)
    for account_id, recs in _by_account(records).items():
        first = recs[0]
        assert (first.step, first.decision, first.channel) == (STEP, "sent", "email"), account_id
        # 08:00 in every candidate zone (the phone's may be an hour behind the address's):
        # planned then, not at midnight to be deferred
        assert "08:00" <= first.local_time[11:16] <= "09:00"
        assert first.text is not None and "unsubscribe" in first.text
        assert not [r for r in recs if r.reason == "validation_pending"]


def test_a_dispute_in_the_period_holds_collection_until_resolved() -> None:
    accounts = [a for a in _accounts(30) if a.country == "US"][1:2]
    account = accounts[0].account_id
    events = [
        event("2026-03-10T14:00:00Z", account, "dispute", channel="letter"),
        event("2026-03-13T14:00:00Z", account, "dispute_resolved"),
    ]
    records = _run(_shipped(ValidationNotice()), accounts, 12, events)
    collection = [r for r in records if r.kind == "collection"]
    during = [r for r in collection if events[0].at <= r.time < events[1].at]
    after = [r for r in collection if r.time >= events[1].at]
    assert during and {(r.decision, r.reason) for r in during} == {("suppressed", "disputed")}
    assert any(r.decision == "sent" for r in after)
    # the notice went once, on the first day, before the dispute
    sent = [r for r in records if r.step == STEP and r.decision == "sent"]
    assert len(sent) == 1 and sent[0].time < events[0].at


def test_ticks_decide_what_simulate_decides_with_the_notice(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """The differential harness: the daemon's ticks record exactly ``simulate``'s
    decisions, notices, ``validation_pending`` and a dispute in the period included."""
    config = _shipped(ValidationNotice(channel="letter"))
    accounts = _accounts(24)
    disputed, resolved = (
        datetime(2026, 3, 10, 14, tzinfo=UTC),
        datetime(2026, 3, 11, 16, tzinfo=UTC),
    )
    # the dispute, of an account with a collection send due in between
    account = next(
        r.account
        for r in _run(config, accounts, 4)
        if r.kind == "collection" and r.decision == "sent" and disputed <= r.time < resolved
    )
    events = [
        event(disputed.isoformat(), account, "dispute", channel="letter"),
        event(resolved.isoformat(), account, "dispute_resolved"),
    ]
    scenario = Scenario(START, 4, config, ROOT / "templates", accounts, events)
    records = list(Simulation(scenario).run())
    expected = [_key(r) for r in records]
    seen = {(r.step == STEP, str(r.decision), r.reason) for r in records}
    assert (True, "sent", None) in seen
    assert (True, "blocked", "no_contact") in seen
    assert (False, "blocked", "validation_pending") in seen
    assert (False, "suppressed", "disputed") in seen
    _, runner = sample_runner(db_url, data_keys, tmp_path, config, accounts, start=START, batch=37)
    _assert_ticks_decide(runner, expected, events)


def test_an_email_notice_ticks_as_simulate_decides(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    """An email notice deferred by the hours, then sent in the same batch as the
    account's collection: the collection after it in the batch goes, as in ``simulate``."""
    config = _shipped(ValidationNotice(channel="email"), place=None)
    accounts = _accounts(16)
    records = _run(config, accounts, 3)
    expected = [_key(r) for r in records]
    assert any(r.step == STEP and r.decision == "deferred" for r in records) or any(
        r.step == STEP and r.decision == "sent" for r in records
    )
    _, runner = sample_runner(db_url, data_keys, tmp_path, config, accounts, start=START, batch=37)
    _assert_ticks_decide(runner, expected, [])


def test_the_shipped_collector_profile_sends_the_notice() -> None:
    """The shipped ``debt-collector`` profile (creditor ``acme-recovery``) asks for the
    notice; the same debtor under ``acme`` (a creditor, no profile) does not get one."""
    config = load_config(ROOT / "config", ROOT / "templates")
    us = [a for a in _accounts(30) if a.country == "US" and a.address_line1][:2]
    collector = dataclasses.replace(us[0], creditor="acme-recovery")
    records = _run(config, [collector, us[1]], 3)
    notices = [r for r in records if r.step == STEP]
    assert {(r.account, str(r.decision)) for r in notices} == {(collector.account_id, "sent")}
    assert notices[0].channel == "letter" and notices[0].text is not None
    assert "Acme Recovery Services is trying to collect a debt" in " ".join(notices[0].text.split())
    assert "This is a communication from a debt collector." in notices[0].text


# --- configuration and lint -----------------------------------------------------------------


def _config_dir(tmp_path: Path, notice: str) -> Path:
    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target)
    policy = target / "policy.yaml"
    policy.write_text(policy.read_text(encoding="utf-8") + notice, encoding="utf-8")
    return target


def test_config_check_finds_the_notice_template(tmp_path: Path) -> None:
    target = _config_dir(
        tmp_path, "validation_notice:\n  channel: email\n  template: validation_notice\n"
    )
    code, out = config_check(target)
    assert code == 0, out
    target = _config_dir(
        tmp_path / "b", "validation_notice:\n  channel: letter\n  template: validaton_notice\n"
    )
    code, out = config_check(target)
    line = line_of(target / "policy.yaml", "template: validaton_notice")
    assert code == 2
    assert f"policy.yaml:{line}:" in out and "template 'validaton_notice' not found" in out


@pytest.mark.parametrize(
    ("notice", "needle", "message"),
    [
        ("validation_notice:\n  channel: sms\n", "channel: sms", "validation_notice.channel"),
        ("validation_notice:\n  period: 12h\n", "period: 12h", "whole days"),
        ("validation_notice:\n  assumed_receipt: -1d\n", "assumed_receipt: -1d", "whole days"),
    ],
)
def test_config_check_refuses_a_bad_notice(
    tmp_path: Path, notice: str, needle: str, message: str
) -> None:
    target = _config_dir(tmp_path, notice)
    code, out = config_check(target)
    assert code == 2
    assert f"policy.yaml:{line_of(target / 'policy.yaml', needle)}:" in out
    assert message in out, out


def test_the_shipped_notice_passes_lint_and_lint_finds_a_missing_fact(tmp_path: Path) -> None:
    config = _shipped(ValidationNotice())
    names = ["letter/validation_notice", "email/validation_notice"]
    assert [
        p for p in lint_templates(ROOT / "templates", config, names) if p.level == "error"
    ] == []
    broken = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", broken)
    path = broken / "letter" / "validation_notice.en-US.html.j2"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("validation.period_end", "validation.period_start"), "utf-8")
    problems = lint_templates(broken, config, ["letter/validation_notice"])
    assert any(
        p.path == str(path) and "missing the end of the validation period" in p.message
        for p in problems
    ), problems


def test_outreach_simulate_reads_the_notice_and_placements_from_a_scenario(
    tmp_path: Path,
) -> None:
    """Through the command line: a scenario's account of the shipped collector gets the
    letter first; placed with an agency, its collection is ``placed`` until recalled."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "start: 2026-03-02T00:00:00Z\n"
        "days: 12\n"
        "accounts:\n"
        '  - {account_id: A1, name: Jane Doe, phone: "+12125550100", email: jane@example.com,\n'
        '     address_line1: "1 Main St", city: New York, region: NY, postal_code: "10001",\n'
        '     country: US, currency: USD, balance: "250.00", due_date: 2026-02-20,\n'
        "     locale: en-US, creditor: acme-recovery}\n"
        "events:\n"
        "  - {at: 2026-03-04T00:00:00Z, account: A1, type: placed, agency: eastern-recovery}\n"
        "  - {at: 2026-03-09T00:00:00Z, account: A1, type: recalled}\n",
        encoding="utf-8",
    )
    _register_all()
    result = CliRunner().invoke(
        app,
        ["simulate", str(scenario)],
        env={
            "OUTREACH_CONFIG": str(ROOT / "config"),
            "OUTREACH_TEMPLATES": str(ROOT / "templates"),
        },
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines[0]["step"] == STEP and lines[0]["decision"] == "sent"
    collection = [r for r in lines if r["kind"] == "collection"]
    placed = [r for r in collection if "2026-03-04" <= r["time"] < "2026-03-09"]
    assert placed and {(r["decision"], r["reason"]) for r in placed} == {("suppressed", "placed")}
    assert any(r["decision"] == "sent" for r in collection if r["time"] >= "2026-03-09")
    assert all(r["time"] >= lines[0]["time"] for r in collection)
