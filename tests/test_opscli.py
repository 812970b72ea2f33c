"""The operator's housekeeping commands: ``--version``, ``db current``, ``db history``
and what ``db upgrade`` says it did, on the real command line (docs/cli.md)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app, version
from orchestrator.store import db

CLOSED_PORT_URL = "postgresql+psycopg://outreach:s3cret-pw@127.0.0.1:1/outreach"


def invoke(args: list[str], url: str = "sqlite://") -> Any:
    _register_all()
    return CliRunner().invoke(app, args, env={"OUTREACH_DATABASE_URL": url})


def test_version_is_pyprojects() -> None:
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version() == expected
    result = invoke(["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"outreach {expected}\n"


def test_version_from_python_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("outreach ")


def test_version_without_metadata_is_unknown(monkeypatch: Any) -> None:
    import importlib.metadata

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert version() == "unknown"


# --- db current, db history, db upgrade -----------------------------------------------------


def _set_revision(url: str, revision: str) -> None:
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_db_commands_on_an_empty_database_then_older_then_head(db_url: str) -> None:
    head = db.known_revisions()[-1]
    assert head == "0009"
    current = invoke(["db", "current"], db_url)
    assert current.exit_code == 0, current.output
    assert current.output == f"no schema (head is {head}): run `outreach db upgrade`\n"
    if db_url.startswith("sqlite"):
        assert not Path(db_url.removeprefix("sqlite:///")).exists()  # only read

    history = invoke(["db", "history"], db_url)
    assert history.exit_code == 0, history.output
    lines = history.output.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == list(reversed(db.known_revisions()))
    assert lines[0].startswith("0009  occurrence priority: ") and lines[0].endswith("  (head)")
    assert "current" not in history.output.replace("outreach db upgrade", "")
    assert lines[-1] == "(the database has no schema: run `outreach db upgrade`)"

    db.upgrade(db_url, "0007")
    assert invoke(["db", "current"], db_url).output == (
        f"0007 (head is {head}): run `outreach db upgrade`\n"
    )
    marked = invoke(["db", "history"], db_url).output.splitlines()
    assert marked[2].startswith("0007  idempotency keys") and marked[2].endswith("  (current)")
    assert len(marked) == len(db.known_revisions())  # no "no schema" line

    upgraded = invoke(["db", "upgrade"], db_url)
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output == "upgraded from 0007 to 0009\n"
    again = invoke(["db", "upgrade"], db_url)
    assert (again.exit_code, again.output) == (0, "already at 0009\n")
    assert invoke(["db", "current"], db_url).output == "0009 (head)\n"
    top = invoke(["db", "history"], db_url).output.splitlines()[0]
    assert top.endswith("  (head, current)")


def test_db_upgrade_of_an_empty_database_says_it_created_the_schema(db_url: str) -> None:
    result = invoke(["db", "upgrade"], db_url)
    assert (result.exit_code, result.output) == (0, "created the schema at 0009\n")


def test_a_revision_from_a_newer_release_is_refused_in_one_line(db_url: str) -> None:
    db.upgrade(db_url)
    _set_revision(db_url, "0099")
    current = invoke(["db", "current"], db_url)
    assert current.exit_code == 0, current.output
    assert current.output == "0099 (not a revision this release knows; its head is 0009)\n"
    for args in (["db", "upgrade"], ["db", "history"]):
        result = invoke(args, db_url)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output
        assert lines[0].startswith("OUTREACH_DATABASE_URL: error: the database at ")
        assert "is at revision 0099, which this release of outreach does not know" in lines[0]


@pytest.mark.parametrize("command", ["current", "history"])
def test_db_current_and_history_fail_like_the_other_db_commands(command: str) -> None:
    unreachable = invoke(["db", command], CLOSED_PORT_URL)
    assert unreachable.exit_code == 1, unreachable.output
    assert unreachable.output.strip().splitlines() == [
        "OUTREACH_DATABASE_URL: error: cannot connect to the database at "
        "postgresql+psycopg://outreach@127.0.0.1:1/outreach: connection refused"
    ]
    unsupported = invoke(["db", command], "mysql://root:s3cret-pw@db.internal/outreach")
    assert unsupported.exit_code == 2, unsupported.output
    assert "unsupported database 'mysql'" in unsupported.output
    assert "s3cret" not in unsupported.output + unreachable.output
