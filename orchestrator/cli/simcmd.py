"""``outreach simulate`` and ``outreach demo``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.runcmd import CONFIG_OPTION, TEMPLATES_OPTION, use_directories
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
    response_model: Path | None = typer.Option(
        None,
        "--response-model",
        help="what people do after a contact (YAML): replies, promises, payments join the run",
    ),
    by: str | None = typer.Option(
        None,
        "--by",
        help="print KPIs by segment or variant (arms against the champion) instead of "
        "the decisions (--out still writes them); one process",
    ),
    as_json: bool = typer.Option(False, "--json", help="with --by: the KPIs as one JSON object"),
) -> None:
    """Run the real engine on a virtual clock; print every decision as JSON Lines.

    Scenario format: docs/scenarios.md; decision records: docs/decisions.md; the
    response model and --by: docs/scenarios.md."""
    from orchestrator.simulation.outcomes import DIMENSIONS
    from orchestrator.simulation.scenario import load_scenario
    from orchestrator.simulation.simulate import simulate_lines

    config_dir = config or Path(os.environ.get("OUTREACH_CONFIG") or "config")
    templates_dir = templates or Path(os.environ.get("OUTREACH_TEMPLATES") or "templates")
    if not scenario.exists():
        typer.echo(f"{scenario}: error: no such scenario file", err=True)
        raise typer.Exit(2)
    if by is not None and by not in DIMENSIONS:
        typer.echo(f"--by: error: {by!r} is not one of {', '.join(DIMENSIONS)}", err=True)
        raise typer.Exit(2)
    if as_json and by is None:
        typer.echo("--json: error: give --by (the decisions are JSON Lines already)", err=True)
        raise typer.Exit(2)
    try:
        loaded = load_scenario(scenario, config_dir=config_dir, templates_dir=templates_dir)
        if response_model is not None:
            from orchestrator.simulation.response import load_response_model

            loaded.response = load_response_model(response_model)
    except OutreachError as exc:
        _fail(exc)
        return
    if by is not None:
        _summary(loaded, by, out, as_json)
        return
    handle = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        for line in simulate_lines(loaded, jobs or os.cpu_count() or 1):
            handle.write(line + "\n")
    finally:
        if out:
            handle.close()


def _summary(loaded: Any, by: str, out: Path | None, as_json: bool) -> None:
    import json

    from rich.console import Console

    from orchestrator.simulation.outcomes import print_summary, simulate_summary

    data, records = simulate_summary(loaded, by)
    if out is not None:
        with out.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(record.to_json() + "\n")
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    print_summary(data, Console(width=160))


def demo(
    accounts: int = typer.Option(500, min=1, help="accounts in the sample portfolio"),
    days: int = typer.Option(30, min=1, help="simulated days"),
    out_dir: Path = typer.Option(
        Path("var/demo"), "--out-dir", help="where the files go; deleted first, with all it holds"
    ),
    config: Path | None = CONFIG_OPTION,
    templates: Path | None = TEMPLATES_OPTION,
) -> None:
    """Load the sample portfolio and run the engine over simulated days.

    Reference: docs/cli.md."""
    from orchestrator.simulation.demo import run_demo

    config_dir, templates_dir = use_directories(config, templates)
    try:
        run_demo(
            accounts=accounts,
            days=days,
            out_dir=out_dir,
            config_dir=config_dir,
            templates_dir=templates_dir,
        )
    except OutreachError as exc:
        _fail(exc)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("demo")(demo)
