"""``outreach simulate`` and ``outreach demo``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from orchestrator.errors import OutreachError


def _fail(exc: OutreachError) -> None:
    problems = getattr(exc, "problems", None)
    if problems:
        for problem in problems:
            typer.echo(str(problem), err=True)
    else:
        typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def simulate(
    scenario: Path = typer.Argument(..., help="scenario YAML (format: docs/scenarios.md)"),
    out: Path | None = typer.Option(None, "--out", help="write JSON Lines here (default stdout)"),
    config: Path | None = typer.Option(None, "--config", help="configuration directory"),
    templates: Path | None = typer.Option(None, "--templates", help="template directory"),
    jobs: int = typer.Option(
        1,
        "--jobs",
        "-j",
        min=0,
        help="processes to split the portfolio across (0: one per CPU); same output",
    ),
) -> None:
    """Run the real engine on a virtual clock; print every decision as JSON Lines.

    Scenario format: docs/scenarios.md; decision records: docs/decisions.md."""
    from orchestrator.simulation.scenario import load_scenario
    from orchestrator.simulation.simulate import simulate_lines

    config_dir = config or Path(os.environ.get("OUTREACH_CONFIG") or "config")
    templates_dir = templates or Path(os.environ.get("OUTREACH_TEMPLATES") or "templates")
    if not scenario.exists():
        typer.echo(f"{scenario}: error: no such scenario file", err=True)
        raise typer.Exit(2)
    try:
        loaded = load_scenario(scenario, config_dir=config_dir, templates_dir=templates_dir)
    except OutreachError as exc:
        _fail(exc)
        return
    handle = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        for line in simulate_lines(loaded, jobs or os.cpu_count() or 1):
            handle.write(line + "\n")
    finally:
        if out:
            handle.close()


def demo(
    accounts: int = typer.Option(500, min=1, help="accounts in the sample portfolio"),
    days: int = typer.Option(30, min=1, help="simulated days"),
    out_dir: Path = typer.Option(
        Path("var/demo"), "--out-dir", help="where the files go; deleted first, with all it holds"
    ),
) -> None:
    """Load the sample portfolio and run the engine over simulated days.

    Reference: docs/cli.md."""
    from orchestrator.simulation.demo import run_demo

    try:
        run_demo(accounts=accounts, days=days, out_dir=out_dir)
    except OutreachError as exc:
        _fail(exc)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("demo")(demo)
