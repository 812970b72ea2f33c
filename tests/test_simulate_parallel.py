"""``simulate --jobs N``: the portfolio split across processes prints exactly what one
process prints, and a scenario runs again to the same result."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.config.loading import load_config
from orchestrator.simulation.events import ScenarioEvent
from orchestrator.simulation.sample import generate_accounts, generate_events
from orchestrator.simulation.simulate import (
    Scenario,
    Simulation,
    canonical,
    partition,
    simulate_lines,
)

START = datetime(2026, 3, 2, tzinfo=UTC)


def _scenario(n: int = 160, days: int = 12) -> Scenario:
    config = load_config(ROOT / "config", ROOT / "templates")
    accounts = list(generate_accounts(n, today=START.date(), seed=5))
    # Two debtors reached at one number: a STOP from it must reach both, in one part.
    accounts[1] = dataclasses.replace(accounts[1], phone=accounts[0].phone)
    events = [
        ScenarioEvent(e.at, e.account, e.type, e.data)
        for e in generate_events(accounts, start=START, days=days, seed=7)
    ]
    events.append(
        ScenarioEvent(
            START.replace(hour=14), accounts[1].account_id, "inbound_sms", {"body": "STOP"}
        )
    )
    events.sort(key=lambda e: e.at)
    return Scenario(START, days, config, ROOT / "templates", accounts, events)


def test_parts_share_no_debtor_phone_or_email() -> None:
    scenario = _scenario()
    parts = partition(scenario, 3)
    assert len(parts) == 3
    assert sorted(a.account_id for p in parts for a in p.accounts) == sorted(
        a.account_id for a in scenario.accounts
    )
    seen: dict[str, int] = {}
    for i, part in enumerate(parts):
        for a in part.accounts:
            for key in (a.debtor_id, a.phone, a.email):
                if key:
                    assert seen.setdefault(key, i) == i, key
        accounts = {a.account_id for a in part.accounts}
        assert all(e.account in accounts for e in part.events)
    payments = [e for p in parts for e in p.events if e.type == "payment"]
    assert payments and all(e.data["payment_id"] for e in payments)


def test_jobs_print_the_same_bytes_as_one_process() -> None:
    scenario = _scenario()
    one = list(simulate_lines(scenario, 1))
    assert one == [r.to_json() for r in canonical(Simulation(scenario).run())]
    decisions = {line.split('"decision": "')[1].split('"')[0] for line in one}
    assert {"sent", "deferred", "suppressed"} <= decisions, decisions  # a varied run
    assert any('"step": "opt_out_confirmation"' in line for line in one)
    assert list(simulate_lines(scenario, 2)) == one
    assert list(simulate_lines(scenario, 3)) == one


def test_canonical_orders_ties_by_account_and_keeps_each_accounts_order() -> None:
    records = list(canonical(Simulation(_scenario(60, 5)).run()))
    keys = [(r.time, r.account) for r in records]
    assert keys == sorted(keys)


def test_a_scenario_runs_again_to_the_same_result() -> None:
    scenario = _scenario(80, 8)
    balances = [a.balance for a in scenario.accounts]
    first = [r.to_json() for r in Simulation(scenario).run()]
    assert [a.balance for a in scenario.accounts] == balances  # the input is not changed
    assert [r.to_json() for r in Simulation(scenario).run()] == first


def test_cli_jobs_option(tmp_path: Path) -> None:
    example = ROOT / "tests" / "examples" / "promise_kept.yaml"
    base = [
        "simulate",
        str(example),
        "--config",
        str(ROOT / "config"),
        "--templates",
        str(ROOT / "templates"),
    ]
    _register_all()
    one = CliRunner().invoke(app, base)
    two = CliRunner().invoke(app, [*base, "--jobs", "2"])
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    assert one.stdout and one.stdout == two.stdout
