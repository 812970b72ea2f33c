"""Priority and budgets (``policy.yaml``): when a limit or a budget has room for some of
the due sends only, the policy's order decides which go; the rest are deferred, reason
``budget`` for a budget, to its next window. The daemon decides as ``simulate`` does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from support import ROOT, config_check, sample_runner  # noqa: I001 - tests/support.py

from orchestrator.config.loading import load_config
from orchestrator.config.models import Config, Policy
from orchestrator.core.priority import window_of
from orchestrator.core.records import DecisionRecord
from orchestrator.simulation.sample import generate_accounts
from orchestrator.simulation.simulate import (
    Scenario,
    Simulation,
)
from orchestrator.store.tables import Decision, table_of
from orchestrator.testing import account, make_config, minimal_templates, simulate

STAGES = [
    {
        "id": "M1",
        "dpd": [1, 60],
        "steps": [
            {
                "id": "s",
                "channel": "sms",
                "template": "reminder",
                "on_dpd": [5],
                "at": "10:00",
                "expires": "3d",
            }
        ],
    }
]
HOURS = {"default": {"start": "08:00", "end": "21:00"}}


def _accounts() -> list[Any]:
    """One debtor with three accounts, and two more debtors: balances set apart."""
    return [
        account("A1", debtor_id="D1", balance="100.00", due_date="2026-03-01"),
        account("A2", debtor_id="D1", balance="900.00", due_date="2026-03-01"),
        account("A3", debtor_id="D1", balance="500.00", due_date="2026-03-01"),
        account(
            "B1", debtor_id="D2", balance="700.00", due_date="2026-03-01", phone="+12125550102"
        ),
        account(
            "C1", debtor_id="D3", balance="300.00", due_date="2026-03-01", phone="+12125550103"
        ),
    ]


def _run(tmp_path: Path, policy: dict[str, Any]) -> list[DecisionRecord]:
    return simulate(
        make_config(stages=STAGES, policy={"hours": HOURS, **policy}),
        _accounts(),
        start="2026-03-05T05:00:00Z",
        days=4,
        templates=minimal_templates(tmp_path / "t"),
    )


LIMIT = {
    "limits": [
        {"id": "sms-daily", "channels": ["sms"], "max": 1, "window": "1d", "scope": "debtor"}
    ]
}


def test_without_priority_the_limit_goes_to_the_first_account(tmp_path: Path) -> None:
    first_day = [r for r in _run(tmp_path, LIMIT) if r.local_time.startswith("2026-03-06T10")]
    assert [(r.account, str(r.decision)) for r in first_day if r.debtor == "D1"] == [
        ("A1", "sent"),
        ("A2", "deferred"),
        ("A3", "deferred"),
    ]


def test_priority_by_balance_gives_the_limit_to_the_largest(tmp_path: Path) -> None:
    records = _run(tmp_path, {**LIMIT, "priority": [{"by": "balance"}]})
    d1 = [(r.account, str(r.decision), r.reason) for r in records if r.debtor == "D1"]
    assert d1[:3] == [
        ("A2", "sent", None),
        ("A3", "deferred", "limit:sms-daily"),
        ("A1", "deferred", "limit:sms-daily"),
    ]
    ascending = _run(tmp_path, {**LIMIT, "priority": [{"by": "balance", "descending": False}]})
    assert [r.account for r in ascending if r.decision == "sent"][0] == "A1"


def test_a_budget_defers_the_rest_to_its_next_window_in_priority_order(tmp_path: Path) -> None:
    """Two texts a day over everyone (New York days), by balance: 900 and 700 go on
    03-06; 500, 300 and 100 are deferred (``budget``) to 03-07 00:00, then by quiet
    hours to 08:00, where 500 and 300 take that day's two; 100 goes on 03-08."""
    budget = {"budgets": [{"id": "sms-day", "channels": ["sms"], "max": 2, "window": "1d"}]}
    records = _run(tmp_path, {**budget, "priority": [{"by": "balance"}]})
    sent = [(r.account, r.local_time[:13]) for r in records if r.decision == "sent"]
    assert sent == [
        ("A2", "2026-03-06T10"),
        ("B1", "2026-03-06T10"),
        ("A3", "2026-03-07T08"),
        ("C1", "2026-03-07T08"),
        ("A1", "2026-03-08T08"),
    ]
    budgeted = [r for r in records if r.reason == "budget"]
    assert {r.account for r in budgeted} == {"A3", "C1", "A1"}
    assert all(r.decision == "deferred" and r.until is not None for r in budgeted)
    assert budgeted[0].until == datetime(2026, 3, 7, 5, tzinfo=UTC)  # New York midnight


def test_budget_windows_follow_the_budget_clock() -> None:
    policy = Policy.model_validate(
        {
            "budgets": [
                {"id": "d", "channels": ["sms"], "max": 1, "window": "1d", "zone": "Asia/Shanghai"},
                {"id": "h", "channels": ["voice"], "max": 1, "window": "2h"},
            ]
        }
    )
    now = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 14:30 in Shanghai, 01:30 in New York (EST)
    day, hours = policy.budgets
    assert window_of(day, now, "America/New_York") == (
        datetime(2026, 3, 7, 16, tzinfo=UTC),
        datetime(2026, 3, 8, 16, tzinfo=UTC),
    )
    start, end = window_of(hours, now, "America/New_York")
    assert (start.astimezone(UTC), end.astimezone(UTC)) == (
        datetime(2026, 3, 8, 5, tzinfo=UTC),  # 00:00 EST
        datetime(2026, 3, 8, 7, tzinfo=UTC),  # 03:00 EDT: the clocks went forward at 02:00
    )


def _daemon_config() -> Config:
    config = load_config(ROOT / "config", ROOT / "templates")
    policy = config.policy.model_copy(
        update={
            "priority": Policy.model_validate(
                {
                    "priority": [
                        {"by": "segment", "segments": ["broke-promise", "high-balance"]},
                        {"by": "dpd"},
                    ]
                }
            ).priority,
            "budgets": Policy.model_validate(
                {
                    "budgets": [
                        {"id": "sms-hour", "channels": ["sms", "email"], "max": 3, "window": "1h"}
                    ]
                }
            ).budgets,
        }
    )
    return config.model_copy(update={"policy": policy})


def test_the_daemon_decides_priority_and_budgets_as_simulate(
    db_url: str, data_keys: str, tmp_path: Path
) -> None:
    start = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)
    config = _daemon_config()
    accounts = list(generate_accounts(80, today=start.date(), seed=5))
    engine, runner = sample_runner(
        db_url, data_keys, tmp_path, config, accounts, start=start, batch=7
    )
    scenario = Scenario(start, 2, config, ROOT / "templates", accounts, [])
    expected = [
        (r.time, r.account, r.step, str(r.decision), r.reason, r.until)
        for r in Simulation(scenario).run()
    ]
    assert sum(1 for r in expected if r[4] == "budget") >= 5  # a real test
    for instant in sorted({r[0] for r in expected}):
        runner.tick(instant)
    runner.tick(start + timedelta(days=2) - timedelta(seconds=1))
    t = table_of(Decision)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.time, t.c.id)).all()
    found = [(r.time, r.account_id, r.step, r.decision, r.reason, r.until) for r in rows]
    assert sorted(found, key=str) == sorted(expected, key=str)
    engine.dispose()


def test_config_check_refuses_bad_budgets_and_priority(cfg: Path) -> None:
    policy = cfg / "policy.yaml"
    text = policy.read_text()
    assert "  - {by: dpd}\n" in text
    text = text.replace("  - {by: dpd}\n", "  - {by: segment, segments: [high-balanse]}\n")
    policy.write_text(text + "\nbudgets:\n  - {id: b1, channels: [fax], max: 10, window: 30m}\n")
    code, out = config_check(cfg)
    assert code == 2, out
    lines = policy.read_text().splitlines()
    seg = next(n for n, row in enumerate(lines, 1) if "high-balanse" in row)
    fax = next(n for n, row in enumerate(lines, 1) if "fax" in row)
    assert f"policy.yaml:{seg}:" in out and "warning: policy: priority: unknown segment" in out
    assert f"policy.yaml:{fax}:" in out and "budget b1: unknown channel 'fax'" in out
    assert "budget b1: window must be whole hours or days" in out
