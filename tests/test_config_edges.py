"""Configuration and scenario files that try to hurt the loader, and the environment
``config check`` looks at: through the real command line."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from support import ROOT  # noqa: I001 - tests/support.py
from typer.testing import CliRunner, Result

from orchestrator.cli import _register_all, app


def laughs(levels: int, width: int = 9) -> list[str]:
    """A "billion laughs": each anchor a list of ``width`` aliases of the one before."""
    rows = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    rows += [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)
    ]
    return rows


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    _register_all()
    return CliRunner().invoke(app, list(args), env=env)


@pytest.mark.parametrize("levels", [4, 8])
def test_a_yaml_alias_bomb_in_config_is_refused_at_its_line(cfg: Path, levels: int) -> None:
    """Nine aliases of nine aliases ... took seconds and 160 MB at 7 levels (and would
    take forever at 8) before any error came out."""
    path = cfg / "creditors.yaml"
    bomb = laughs(levels)
    path.write_text(path.read_text() + "\n".join(bomb) + "\n")
    started = time.monotonic()
    result = cli("config", "check", "--config", str(cfg), "--templates", str(ROOT / "templates"))
    assert time.monotonic() - started < 30
    assert result.exit_code == 2
    # a0 to a3 stand for 8,289 values together; a4's first alias passes 10,000
    a4 = path.read_text().splitlines().index(bomb[4]) + 1
    assert f"{path}:{a4}:10: error: YAML aliases expand to more than 10,000" in result.stdout, (
        result.stdout
    )
    assert "Traceback" not in result.output


def test_many_alias_uses_are_refused_and_a_few_anchors_are_fine(cfg: Path) -> None:
    path = cfg / "policy.yaml"
    original = path.read_text()
    path.write_text(original + "x-window: &w 7d\n" + "".join(f"x-{n}: *w\n" for n in range(101)))
    result = cli("config", "check", "--config", str(cfg), "--templates", str(ROOT / "templates"))
    assert result.exit_code == 2
    assert f"{path}:{len(original.splitlines()) + 102}:" in result.stdout
    assert "more than 100 uses" in result.stdout
    shared = cfg / "channels.yaml"  # anchors used as intended still load
    shared.write_text(
        "sms: &box {adapter: outbox, dir: var/outbox}\nvoice: *box\nemail: *box\nletter: *box\n"
    )
    path.write_text(original)
    result = cli("config", "check", "--config", str(cfg), "--templates", str(ROOT / "templates"))
    assert result.exit_code == 0, result.stdout


def test_a_yaml_alias_bomb_in_a_scenario_is_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "bomb.yaml"
    lines = ["start: 2026-03-02T00:00:00Z", "days: 1", "accounts: []", *laughs(8)]
    scenario.write_text("\n".join(lines) + "\n")
    result = cli("simulate", str(scenario), "--config", str(ROOT / "config"))
    assert result.exit_code == 2
    assert f"{scenario}:8:" in result.stderr and "YAML aliases" in result.stderr, result.stderr


def test_a_yaml_alias_bomb_in_template_front_matter_is_refused(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    path = templates / "sms" / "reminder.en-US.txt.j2"
    head, body = path.read_text().split("---\n", 2)[1:]
    path.write_text("---\n" + head + "\n".join(laughs(8)) + "\n---\n" + body)
    result = cli(
        "templates",
        "lint",
        "sms/reminder",
        "--templates",
        str(templates),
        "--config",
        str(ROOT / "config"),
    )
    assert result.exit_code == 2
    # line 1 is the opening ---, the description line 2, a0 line 3, a4 line 7
    assert "sms/reminder.en-US.txt.j2:7: error: invalid front matter: YAML aliases expand" in (
        result.stdout
    ), result.output
