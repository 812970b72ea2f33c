"""``outreach webhooks list`` and ``outreach webhooks replay``: the outbound webhooks'
deliveries, and the dead letters queued again (docs/cli.md)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer

webhooks_app = typer.Typer(
    help="Outbound webhooks: list deliveries, replay dead letters.", no_args_is_help=True
)


def _engine() -> Any:
    from orchestrator.config.settings import Settings
    from orchestrator.store import db

    return db.open_database(Settings.from_env().database_url)


def _since(value: str | None) -> datetime | None:
    from orchestrator.clock import parse_instant

    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        typer.echo(f"--since: error: {exc}", err=True)
        raise typer.Exit(2) from exc


@webhooks_app.command("list")
def list_deliveries(
    dead: bool = typer.Option(False, "--dead", help="only the dead letters"),
    subscription: str | None = typer.Option(None, "--subscription", help="only this one"),
    limit: int = typer.Option(50, "--limit", min=1, max=10000, help="at most this many"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """The latest deliveries, newest first: state, attempts, the receiver's last answer.

    Reference: docs/cli.md."""
    from orchestrator.store.webhook_outbox import listing

    engine = _engine()
    try:
        with engine.connect() as conn:
            rows = listing(conn, dead=dead, subscription=subscription, limit=limit)
    finally:
        engine.dispose()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    if not rows:
        typer.echo("no dead letters" if dead else "no deliveries")
    for r in rows:
        last = f", last {r['last_error']}" if r["last_error"] else ""
        typer.echo(
            f"#{r['id']} {r['subscription']} {r['type']} account {r['account_id']} "
            f"at {r['event_time']}: {r['state']} after {r['attempts']} attempt(s){last}"
        )


@webhooks_app.command("replay")
def replay(
    subscription: str | None = typer.Option(None, "--subscription", help="only this one's"),
    since: str | None = typer.Option(None, "--since", help="only those dead since (ISO-8601)"),
    ids: list[int] = typer.Option([], "--id", help="these deliveries (repeat), in any state"),
) -> None:
    """Queue dead letters again (or the deliveries given by --id): the daemon posts them
    at its next pass, with their attempts reset and the same webhook-id.

    Reference: docs/cli.md."""
    from orchestrator.cli.actor import cli_actor
    from orchestrator.clock import SystemClock
    from orchestrator.store.webhook_outbox import replay as replay_deliveries

    after = _since(since)
    engine = _engine()
    try:
        with engine.begin() as conn:  # an --id not queued undoes the whole replay
            queued = replay_deliveries(
                conn,
                SystemClock().now(),
                cli_actor(),
                subscription=subscription,
                since=after,
                ids=ids,
            )
            missing = sorted(set(ids) - set(queued))
            if missing:
                typer.echo(
                    f"--id: error: no such delivery (or being sent now, or of another "
                    f"subscription): {', '.join(map(str, missing))}; nothing queued",
                    err=True,
                )
                raise typer.Exit(2)
    finally:
        engine.dispose()
    shown = f" (#{', #'.join(map(str, queued))})" if queued else ""
    typer.echo(f"queued again: {len(queued)}{shown}")


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
