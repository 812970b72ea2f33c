"""``outreach pause`` and ``outreach resume``: an operator's emergency stop of outbound
sends, for every channel of every creditor, one channel or one creditor (docs/cli.md).

The pause is stored in the database the daemon's workers read at each claim; starting
and ending one is audited with the OS user as its actor. Each command prints the pauses
in force afterwards.
"""

from __future__ import annotations

from typing import Any

import typer

from orchestrator.cli.actor import cli_actor
from orchestrator.errors import OutreachError


def _scope(channel: str | None, creditor: str | None) -> Any:
    """The settings, after checking ``channel`` and ``creditor`` against the loaded
    configuration: an unknown one is one line on stderr and exit 2."""
    from orchestrator.cli.simcmd import _fail
    from orchestrator.config.loading import load_config
    from orchestrator.config.settings import Settings

    settings = Settings.from_env()
    try:
        config = load_config(settings.config_dir)
    except OutreachError as exc:
        _fail(exc)
    if channel is not None and channel not in config.channels:
        known = ", ".join(sorted(config.channels)) or "none"
        typer.echo(f"--channel: error: unknown channel {channel!r} (configured: {known})", err=True)
        raise typer.Exit(2)
    if creditor is not None and config.creditor(creditor) is None:
        known = ", ".join(sorted(config.creditors.creditors)) or "none"
        typer.echo(
            f"--creditor: error: unknown creditor {creditor!r} (configured: {known})", err=True
        )
        raise typer.Exit(2)
    return settings


def _print_active(conn: Any) -> None:
    from orchestrator.store.pauses import active_pauses

    active = active_pauses(conn)
    if not active:
        typer.echo("no pause in force: outbound sends go")
        return
    typer.echo(f"paused now ({len(active)}):")
    for pause in active:
        typer.echo(f"  {pause.describe()}")


def pause(
    channel: str | None = typer.Option(None, "--channel", help="only this channel"),
    creditor: str | None = typer.Option(None, "--creditor", help="only this creditor's accounts"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the record"),
) -> None:
    """Stop outbound sends now: every channel of every creditor, or only --channel and/or
    --creditor. Every daemon worker holds back what it claims after this returns.

    Reference: docs/cli.md."""
    from orchestrator.clock import SystemClock
    from orchestrator.store import db
    from orchestrator.store.pauses import start_pause

    settings = _scope(channel, creditor)
    engine = db.open_database(settings.database_url)
    try:
        with engine.begin() as conn:
            started = start_pause(
                conn,
                channel=channel,
                creditor=creditor,
                reason=reason,
                actor=cli_actor(),
                now=SystemClock().now(),
            )
        typer.echo(f"paused {started.describe()}")
        with engine.connect() as conn:
            _print_active(conn)
    finally:
        engine.dispose()


def resume(
    channel: str | None = typer.Option(None, "--channel", help="only the pause of this channel"),
    creditor: str | None = typer.Option(None, "--creditor", help="only the pause of this creditor"),
) -> None:
    """End operator pauses: all of them, or with --channel and/or --creditor only the one
    started with exactly those options. What they held goes at its next check (within a
    minute).

    Reference: docs/cli.md."""
    from orchestrator.clock import SystemClock
    from orchestrator.store import db
    from orchestrator.store.pauses import end_pauses

    settings = _scope(channel, creditor)
    engine = db.open_database(settings.database_url)
    try:
        with engine.begin() as conn:
            ended = end_pauses(
                conn,
                actor=cli_actor(),
                now=SystemClock().now(),
                channel=channel,
                creditor=creditor,
                every=channel is None and creditor is None,
            )
        for pause_ in ended:
            typer.echo(f"resumed {pause_.describe()}")
        if not ended:
            typer.echo("no matching pause was in force")
        with engine.connect() as conn:
            _print_active(conn)
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    app.command("pause")(pause)
    app.command("resume")(resume)
