"""An account's stage, as planning finds it, in ``account show``: the stage, when the
account entered it and its balance then (what the recovery rate divides by); a paid-in-
full account shows closed, in the stage it closed in. Driven through the real command
line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from support import ROOT, TEST_SECRET, write_config
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.store import db

CADENCES = """
stages:
  - id: M1
    dpd: [1, 30]
    steps:
      - {id: m1-sms, channel: sms, template: reminder, on_dpd: [1, 8, 15], at: "10:00"}
  - id: M2
    dpd: [31, 60]
    steps:
      - {id: m2-sms, channel: sms, template: overdue, on_dpd: [31], at: "10:00"}
"""
HEADER = "account_id,name,phone,country,region,currency,balance,due_date,creditor,reference"


class Cli:
    """``outreach`` on one database and configuration."""

    def __init__(self, db_url: str, tmp_path: Path):
        config = write_config(tmp_path / "config", outbox=tmp_path / "outbox", cadences=CADENCES)
        self.env = {
            "OUTREACH_DATABASE_URL": db_url,
            "OUTREACH_DATA_KEYS": Fernet.generate_key().decode(),
            "OUTREACH_SECRET_KEY": TEST_SECRET,
            "OUTREACH_CONFIG": str(config),
            "OUTREACH_TEMPLATES": str(ROOT / "templates"),
            "COLUMNS": "200",
        }
        self.tmp = tmp_path
        _register_all()

    def __call__(self, *args: str) -> str:
        result = CliRunner().invoke(app, list(args), env=self.env)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return str(result.stdout)

    def csv(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    def show(self, account_id: str) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(self("account", "show", account_id, "--json"))
        return shown

    def run_at(self, instant: str) -> None:
        self("run", "--once", "--now", instant)


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    db.upgrade(db_url)
    cli = Cli(db_url, tmp_path)
    cli(
        "import",
        "accounts",
        cli.csv(
            "accounts.csv",
            HEADER + "\n"
            "A1,Pat Doe,+12125550100,US,NY,USD,250.00,2026-02-20,acme,R1\n"
            "A2,Sam Roe,+12125550111,US,NY,USD,80.00,2026-02-20,acme,R2\n",
        ),
    )
    return cli


def stage_of(shown: dict[str, Any]) -> tuple[Any, ...]:
    return (
        shown["status"],
        shown["stage"],
        shown.get("stage_entered_at"),
        shown.get("balance_at_stage_entry"),
    )


def test_planning_writes_the_stage_its_entry_and_the_balance_then(cli: Cli) -> None:
    shown = cli.show("A1")  # before any planning, the stage is not known
    assert shown["stage"] is None and "stage_entered_at" not in shown
    assert "stage -  " in cli("account", "show", "A1")
    cli.run_at("2026-03-02T15:00:00Z")  # DPD 10 in New York: M1 since 21 February
    assert stage_of(cli.show("A1")) == ("open", "M1", "2026-02-21T05:00:00Z", "250.00")
    human = cli("account", "show", "A1")
    assert "stage M1 (since 2026-02-21 05:00 UTC, balance then 250.00)" in human

    cli(
        "import",
        "payments",
        cli.csv(
            "p1.csv",
            "payment_id,account_id,amount,paid_at\n"
            "P1,A1,50.00,2026-03-10T16:00:00Z\n"
            "P2,A2,80.00,2026-03-10T16:00:00Z\n",
        ),
    )
    cli.run_at("2026-03-23T15:00:00Z")  # DPD 31: M2 since that local midnight (EDT)
    assert stage_of(cli.show("A1")) == ("open", "M2", "2026-03-23T04:00:00Z", "200.00")
    # Paid in full on DPD 18: closed, in the stage it closed in, whatever the DPD now.
    assert stage_of(cli.show("A2")) == ("closed", "M1", "2026-02-21T05:00:00Z", "80.00")
    assert "status closed  stage M1 (since" in cli("account", "show", "A2")


def test_the_balance_at_entry_stays_what_it_was_at_entry(cli: Cli) -> None:
    cli.run_at("2026-03-23T15:00:00Z")
    assert stage_of(cli.show("A1")) == ("open", "M2", "2026-03-23T04:00:00Z", "250.00")
    cli(
        "import",
        "payments",
        cli.csv(
            "p.csv", "payment_id,account_id,amount,paid_at\nP1,A1,30.00,2026-03-24T16:00:00Z\n"
        ),
    )
    # Fees added by a later import change the balance, not what it was at entry.
    cli(
        "import",
        "accounts",
        cli.csv(
            "fees.csv", HEADER + "\nA1,Pat Doe,+12125550100,US,NY,USD,400.00,2026-02-20,acme,R1\n"
        ),
    )
    cli.run_at("2026-03-25T15:00:00Z")
    shown = cli.show("A1")
    assert shown["balance"] == "400.00"
    assert stage_of(shown) == ("open", "M2", "2026-03-23T04:00:00Z", "250.00")
    # The recovery rate divides by it: A1 250.00 and A2 80.00 (not 400.00 + 30.00 paid).
    report = json.loads(cli("report", "--json", "--since", "2026-03-23", "--until", "2026-03-25"))
    m2 = next(s for s in report["stages"] if s["stage"] == "M2")
    assert m2["balance_at_entry"] == {"USD": "330.00"}
    assert m2["recovered"] == {"USD": "30.00"}
