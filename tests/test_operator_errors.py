"""Operator mistakes get one clear line and the contract's exit code, never a traceback:
a command run before ``db upgrade`` (or on an older schema), a database that cannot be
reached, a database URL outreach does not run on. Each case drives the real command line
(the root app with every command, as ``outreach`` runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app
from orchestrator.store import db

_KEY = Fernet.generate_key().decode()
CLOSED_PORT_URL = "postgresql+psycopg://outreach:s3cret-pw@127.0.0.1:1/outreach"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(
        "account_id,name,currency,balance,due_date\nA1,Pat Doe,USD,100.00,2026-02-01\n"
    )
    payments = tmp_path / "payments.csv"
    payments.write_text("payment_id,account_id,amount,paid_at\nP1,A1,10.00,2026-03-02T10:00:00Z\n")
    return {"accounts": accounts, "payments": payments}


def commands(files: dict[str, Path]) -> dict[str, list[str]]:
    """Every command that reads or writes the tables, with arguments that are fine."""
    return {
        "import accounts": ["import", "accounts", str(files["accounts"])],
        "import payments": ["import", "payments", str(files["payments"])],
        "run --once": ["run", "--once", "--now", "2026-03-02T15:00:00Z"],
        "report": ["report", "--since", "2026-03-01", "--until", "2026-03-31"],
        "account show": ["account", "show", "A1"],
        "serve": ["serve", "--host", "192.0.2.1", "--port", "8"],  # never listens
    }


def invoke(args: list[str], url: str) -> Any:
    _register_all()
    env = {
        "OUTREACH_DATABASE_URL": url,
        "OUTREACH_DATA_KEYS": _KEY,
        "OUTREACH_SECRET_KEY": "test-secret",
        "OUTREACH_CONFIG": str(ROOT / "config"),
        "OUTREACH_TEMPLATES": str(ROOT / "templates"),
        "OUTREACH_PUBLIC_URL": "http://127.0.0.1:8000",
    }
    return CliRunner().invoke(app, args, env=env)


def one_line(result: Any, code: int) -> str:
    """The output, after checking the exit code, that no exception escaped (no traceback)
    and that the message is short."""
    output = str(result.output)
    assert result.exit_code == code, output + repr(result.exception)
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert "Traceback" not in output
    assert 1 <= len(output.strip().splitlines()) <= 3, output
    return output


@pytest.mark.parametrize(
    "command",
    ["import accounts", "import payments", "run --once", "report", "account show", "serve"],
)
def test_a_command_before_db_upgrade_says_run_db_upgrade(
    db_url: str, files: dict[str, Path], command: str
) -> None:
    out = one_line(invoke(commands(files)[command], db_url), 2)
    head = db.known_revisions()[-1]
    assert f"has no schema (expected revision {head}): run `outreach db upgrade`" in out
    assert out.startswith("OUTREACH_DATABASE_URL: error: the database at ")


def test_a_command_on_an_older_schema_names_both_revisions(
    db_url: str, files: dict[str, Path]
) -> None:
    *_, older, head = db.known_revisions()
    db.upgrade(db_url, older)
    out = one_line(invoke(commands(files)["account show"], db_url), 2)
    assert f"is at revision {older}, expected {head}: run `outreach db upgrade`" in out
    db.upgrade(db_url)
    assert invoke(commands(files)["import accounts"], db_url).exit_code == 0


@pytest.mark.parametrize(
    "command",
    [
        "import accounts",
        "import payments",
        "run --once",
        "report",
        "account show",
        "serve",
        "db upgrade",
    ],
)
def test_an_unreachable_database_is_a_runtime_failure_without_its_password(
    files: dict[str, Path], command: str
) -> None:
    args = {**commands(files), "db upgrade": ["db", "upgrade"]}[command]
    out = one_line(invoke(args, CLOSED_PORT_URL), 1)
    assert (
        "OUTREACH_DATABASE_URL: error: cannot connect to the database at "
        "postgresql+psycopg://outreach@127.0.0.1:1/outreach: connection refused"
    ) in out
    assert "s3cret" not in out


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://root:s3cret-pw@db.internal/outreach", "unsupported database 'mysql'"),
        (
            "postgresql+psycopg2://u:s3cret-pw@db/outreach",
            "unsupported database 'postgresql+psycopg2'",
        ),
        ("not a url at all s3cret-pw", "not a database URL"),
    ],
)
@pytest.mark.parametrize(
    "command", ["import accounts", "run --once", "report", "account show", "db upgrade"]
)
def test_an_unsupported_database_url_is_a_configuration_error(
    files: dict[str, Path], url: str, said: str, command: str
) -> None:
    args = {**commands(files), "db upgrade": ["db", "upgrade"]}[command]
    out = one_line(invoke(args, url), 2)
    assert f"OUTREACH_DATABASE_URL: error: {said} " in out
    assert "(sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)" in out
    assert "s3cret" not in out


def test_the_console_script_says_it_in_one_line_too(tmp_path: Path) -> None:
    """``python -m orchestrator`` (what ``outreach`` runs), not only the test runner."""
    env = dict(os.environ, OUTREACH_DATABASE_URL=CLOSED_PORT_URL, OUTREACH_DATA_KEYS=_KEY)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "account", "show", "A1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        "OUTREACH_DATABASE_URL: error: cannot connect to the database at "
        "postgresql+psycopg://outreach@127.0.0.1:1/outreach: connection refused"
    ]


def test_a_migration_that_fails_says_why_not_to_run_it_again(db_url: str) -> None:
    """A table in the way (a database shared with something else): the migration's own
    error, exit 1; not "run `outreach db upgrade`", which is what just failed."""
    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE debtor (something integer)"))
    engine.dispose()
    out = one_line(invoke(["db", "upgrade"], db_url), 1)
    assert out.startswith("OUTREACH_DATABASE_URL: error: the migration failed on the database at ")
    assert "debtor" in out and "already exists" in out and "db upgrade" not in out
