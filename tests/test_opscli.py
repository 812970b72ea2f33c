"""The operator's housekeeping commands: ``--version``, ``db current``, ``db history``
and what ``db upgrade`` says it did, on the real command line (docs/cli.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from support import ROOT, TEST_SECRET  # noqa: I001 - tests/support.py
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
    assert head == "0021"
    current = invoke(["db", "current"], db_url)
    assert current.exit_code == 0, current.output
    assert current.output == f"no schema (head is {head}): run `outreach db upgrade`\n"
    if db_url.startswith("sqlite"):
        assert not Path(db_url.removeprefix("sqlite:///")).exists()  # only read

    history = invoke(["db", "history"], db_url)
    assert history.exit_code == 0, history.output
    lines = history.output.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == list(reversed(db.known_revisions()))
    assert lines[0].startswith("0021  planning writes") and lines[0].endswith("  (head)")
    assert "current" not in history.output.replace("outreach db upgrade", "")
    assert lines[-1] == "(the database has no schema: run `outreach db upgrade`)"

    db.upgrade(db_url, "0007")
    assert invoke(["db", "current"], db_url).output == (
        f"0007 (head is {head}): run `outreach db upgrade`\n"
    )
    marked = invoke(["db", "history"], db_url).output.splitlines()
    at_0007 = next(line for line in marked if line.startswith("0007  "))
    assert at_0007.startswith("0007  idempotency keys") and at_0007.endswith("  (current)")
    assert len(marked) == len(db.known_revisions())  # no "no schema" line

    upgraded = invoke(["db", "upgrade"], db_url)
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output == f"upgraded from 0007 to {head}\n"
    again = invoke(["db", "upgrade"], db_url)
    assert (again.exit_code, again.output) == (0, f"already at {head}\n")
    assert invoke(["db", "current"], db_url).output == f"{head} (head)\n"
    top = invoke(["db", "history"], db_url).output.splitlines()[0]
    assert top.endswith("  (head, current)")


def test_db_upgrade_of_an_empty_database_says_it_created_the_schema(db_url: str) -> None:
    result = invoke(["db", "upgrade"], db_url)
    head = db.known_revisions()[-1]
    assert (result.exit_code, result.output) == (0, f"created the schema at {head}\n")


def test_a_revision_from_a_newer_release_is_refused_in_one_line(db_url: str) -> None:
    db.upgrade(db_url)
    _set_revision(db_url, "0099")
    current = invoke(["db", "current"], db_url)
    assert current.exit_code == 0, current.output
    head = db.known_revisions()[-1]
    assert current.output == f"0099 (not a revision this release knows; its head is {head})\n"
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


# --- run, serve and demo take --config and --templates ------------------------------------


@pytest.fixture
def daemon_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What ``run`` and ``serve`` need, with OUTREACH_CONFIG and OUTREACH_TEMPLATES at
    directories that do not exist: only the options can make the commands work. Set
    through monkeypatch, which restores them (the options export theirs)."""
    db.upgrade(db_url)
    monkeypatch.chdir(tmp_path)  # the outbox writes under the working directory
    env = {
        "OUTREACH_DATABASE_URL": db_url,
        "OUTREACH_DATA_KEYS": Fernet.generate_key().decode(),
        "OUTREACH_SECRET_KEY": TEST_SECRET,
        "OUTREACH_PUBLIC_URL": "http://127.0.0.1:8000",
        "OUTREACH_CONFIG": str(tmp_path / "no-config"),
        "OUTREACH_TEMPLATES": str(tmp_path / "no-templates"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _broken_config(tmp_path: Path) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(ROOT / "config", copy)
    cadences = copy / "cadences.yaml"
    cadences.write_text(cadences.read_text().replace("template: reminder,", "templte: reminder,"))
    return copy


DIRS = ["--config", str(ROOT / "config"), "--templates", str(ROOT / "templates")]


def test_run_reads_the_directories_of_its_options(
    daemon_env: dict[str, str], tmp_path: Path
) -> None:
    now = ["--once", "--now", "2026-03-02T15:00:00Z"]
    result = invoke(["run", *now, *DIRS], daemon_env["OUTREACH_DATABASE_URL"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["planned"] == 0
    broken = _broken_config(tmp_path)
    args = ["run", *now, "--config", str(broken), "--templates", str(ROOT / "templates")]
    failed = invoke(args, daemon_env["OUTREACH_DATABASE_URL"])
    assert failed.exit_code == 2, failed.output
    assert f"{broken / 'cadences.yaml'}:" in failed.output and "templte" in failed.output


def test_serve_reads_the_directories_of_its_options(
    daemon_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))
    result = invoke(["serve", *DIRS], daemon_env["OUTREACH_DATABASE_URL"])
    assert result.exit_code == 0, result.output
    assert len(served) == 1
    broken = _broken_config(tmp_path)
    args = ["serve", "--config", str(broken), "--templates", str(ROOT / "templates")]
    failed = invoke(args, daemon_env["OUTREACH_DATABASE_URL"])
    assert failed.exit_code == 2, failed.output
    assert f"{broken / 'cadences.yaml'}:" in failed.output and len(served) == 1


def test_demo_takes_its_options_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orchestrator.simulation.demo

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        orchestrator.simulation.demo, "run_demo", lambda **kwargs: calls.append(kwargs)
    )
    monkeypatch.setenv("OUTREACH_CONFIG", str(tmp_path / "env-config"))
    monkeypatch.delenv("OUTREACH_TEMPLATES", raising=False)
    assert invoke(["demo", "--out-dir", str(tmp_path / "d")]).exit_code == 0
    assert calls[-1]["config_dir"] == tmp_path / "env-config"
    assert calls[-1]["templates_dir"] == Path("templates")
    assert invoke(["demo", *DIRS]).exit_code == 0
    assert calls[-1]["config_dir"] == ROOT / "config"
    assert calls[-1]["templates_dir"] == ROOT / "templates"


@pytest.mark.parametrize("command", ["run", "serve", "demo"])
@pytest.mark.parametrize("option", ["--config", "--templates"])
def test_a_directory_that_does_not_exist_is_one_line_and_exit_2(
    command: str, option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OUTREACH_CONFIG", "OUTREACH_TEMPLATES"):
        monkeypatch.delenv(name, raising=False)
    missing = tmp_path / "missing"
    result = invoke([command, option, str(missing)])
    assert result.exit_code == 2, result.output
    what = "configuration" if option == "--config" else "template"
    assert result.output.strip().splitlines() == [f"{missing}: error: no such {what} directory"]


def test_shell_completion_completes_commands() -> None:
    """``--install-completion`` is on: the completion script typer installs asks the
    command itself, as bash does here."""
    env = {
        **os.environ,
        "_OUTREACH_COMPLETE": "complete_bash",
        "COMP_WORDS": "outreach config sc",
        "COMP_CWORD": "2",
    }
    outreach = Path(sys.executable).with_name("outreach")
    done = subprocess.run([str(outreach)], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["schema"]
