"""The operator's housekeeping commands: ``--version``, ``db current``, ``db history``
and what ``db upgrade`` says it did, on the real command line (docs/cli.md)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from typing import Any

from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner

from orchestrator.cli import _register_all, app, version


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
