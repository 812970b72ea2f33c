"""``outreach status``: is it running, and is it keeping up (docs/cli.md)."""

from __future__ import annotations

import json
from typing import Any

import typer


def status(
    as_json: bool = typer.Option(False, "--json", help="one JSON object with every figure"),
) -> None:
    """The workers (alive, version, last planning round), sends due and late by channel,
    ambiguous sends waiting for a person, today's sends and decisions, the operator
    pauses in force, complaint and dispute cases open and overdue, and outbound webhooks
    retrying or dead.

    Reference: docs/cli.md."""
    from orchestrator.clock import SystemClock
    from orchestrator.config.settings import Settings
    from orchestrator.store import db
    from orchestrator.store.status import status as read_status

    settings = Settings.from_env()
    engine = db.open_database(settings.database_url)
    try:
        with engine.connect() as conn:
            data = read_status(conn, SystemClock().now())
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    _print(data)


def _counts(by_channel: dict[str, int]) -> str:
    return ", ".join(f"{channel} {n}" for channel, n in by_channel.items()) or "none"


def _print(data: dict[str, Any]) -> None:
    typer.echo(f"status at {data['time']}")
    workers = data["workers"]
    if not workers:
        typer.echo("workers: none has run yet (outreach run)")
    for w in workers:
        state = "alive" if w["alive"] else "NOT SEEN"
        plan = w["last_planning"]
        planned = (
            f"; planned {plan['occurrences']} at {plan['at']} in {plan['seconds']} s"
            if plan
            else ""
        )
        typer.echo(
            f"worker {w['worker']} ({w['host']}, pid {w['pid']}, {w['version']}): {state}, "
            f"last heartbeat {w['last_heartbeat']} ({w['seconds_since_heartbeat']} s ago)"
            f"{planned}"
        )
    occ = data["occurrences"]
    typer.echo(f"due now: {_counts(occ['due'])}")
    typer.echo(f"late (due over 10 minutes ago): {_counts(occ['late'])}")
    typer.echo(f"ambiguous sends waiting for a person: {occ['ambiguous']}")
    today = data["today"]
    typer.echo(f"sends since {today['since']}: {_counts(today['sends'])}")
    for channel, decisions in today["decisions"].items():
        typer.echo(f"  decisions {channel}: {_counts(decisions)}")
    pauses = data["pauses"]
    if not pauses:
        typer.echo("pauses: none")
    for p in pauses:
        scope = ", ".join(
            [
                f"channel {p['channel']}" if p["channel"] else "every channel",
                f"creditor {p['creditor']}" if p["creditor"] else "every creditor",
            ]
        )
        typer.echo(f"PAUSED #{p['id']} {scope} by {p['actor']} since {p['created_at']}")
    _print_cases(data["cases"])
    _print_webhooks(data["webhooks"])
    tasks = data["work"]["tasks"]  # the cases are on their line above, by kind
    late = (
        f"OVERDUE {tasks['overdue']} (outreach tasks list --overdue)"
        if tasks["overdue"]
        else "overdue 0"
    )
    typer.echo(f"tasks: open {tasks['open']}, {late}")


def _print_cases(cases: dict[str, Any]) -> None:
    """``cases: 3 open (complaint 2, dispute 1), OVERDUE 1 (complaint 1)``."""
    open_, overdue = cases["open"], cases["overdue"]
    line = f"cases: {sum(open_.values())} open"
    if open_:
        line += f" ({_counts(open_)})"
    if overdue:
        line += (
            f", OVERDUE {sum(overdue.values())} ({_counts(overdue)}): outreach cases list --overdue"
        )
    else:
        line += ", none overdue"
    typer.echo(line)


def _print_webhooks(hooks: dict[str, Any]) -> None:
    if not hooks["subscriptions"]:
        typer.echo("webhooks: nothing waiting")
        return
    for sub, n in hooks["subscriptions"].items():
        dead = f"DEAD {n['dead']} (outreach webhooks replay)" if n["dead"] else "dead 0"
        typer.echo(
            f"webhooks {sub}: pending {n['pending']} (retrying {n['retrying']}), "
            f"sending {n['sending']}, {dead}"
        )


def register(app: typer.Typer) -> None:
    app.command("status")(status)
