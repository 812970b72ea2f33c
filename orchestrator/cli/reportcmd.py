"""``outreach report``: KPIs by stage and channel (docs/cli.md) as tables, JSON or HTML."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer

from orchestrator.errors import OutreachError


def _date(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        typer.echo(f"{option}: error: not an ISO date (YYYY-MM-DD): {value!r}", err=True)
        raise typer.Exit(2) from None


def report(
    since: str | None = typer.Option(
        None, "--since", help="first date (default: the first recorded decision)"
    ),
    until: str | None = typer.Option(
        None, "--until", help="last date, inclusive (default: the last recorded decision)"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON object with every figure"),
    html: Path | None = typer.Option(
        None, "--html", help="also write a self-contained HTML report with charts to this file"
    ),
    by: str | None = typer.Option(
        None,
        "--by",
        metavar="DIM",
        help="also break the KPIs down by segment, variant (with intervals against the "
        "champion), step, template, hour or weekday (the debtor's local time)",
    ),
) -> None:
    """KPIs per stage and per channel: contact, promise, kept and recovery rates, costs,
    opt-outs, complaints and decisions by reason; with --by, per segment, experiment arm,
    step, template, local hour or local weekday too.

    What each figure means: docs/cli.md."""
    from rich.console import Console

    from orchestrator.clock import SystemClock
    from orchestrator.config.loading import load_config
    from orchestrator.config.settings import Settings
    from orchestrator.reporting.breakdown import DIMENSIONS
    from orchestrator.reporting.kpis import activity_span, build_report
    from orchestrator.reporting.tables import print_report
    from orchestrator.store.db import open_database

    first, last = _date("--since", since), _date("--until", until)
    if by is not None and by not in DIMENSIONS:
        allowed = ", ".join(DIMENSIONS)
        typer.echo(f"--by: error: unknown dimension {by!r}: one of {allowed}", err=True)
        raise typer.Exit(2)
    settings = Settings.from_env()
    try:
        config = load_config(settings.config_dir, settings.templates_dir)
    except OutreachError as exc:
        from orchestrator.cli.data import _fail

        _fail(exc)
    engine = open_database(settings.database_url)
    try:
        with engine.connect() as conn:
            span = activity_span(conn)
            if first is None or last is None:
                if span is None:
                    typer.echo(
                        "error: no decisions recorded yet: give --since and --until", err=True
                    )
                    raise typer.Exit(2)
                first, last = first or span[0], last or span[1]
            if last < first:
                typer.echo(f"--until: error: {last} is before --since {first}", err=True)
                raise typer.Exit(2)
            data = build_report(
                conn, config, first, last, by, now=SystemClock().now(), heatmap=html is not None
            )
    finally:
        engine.dispose()
    if html is not None:
        from orchestrator.reporting.html import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(data), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    console = Console()
    print_report(data, console)
    if html is not None:
        console.print(f"written: {html}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
