"""``outreach audit --account ID``: who changed what on an account, in time order
(docs/cli.md). Entries hold ids, fields and states, never personal data in clear."""

from __future__ import annotations

import json

import typer


def audit(
    account: str = typer.Option(..., "--account", help="the account's id"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """An account's audit entries, oldest first: imports that changed it, events and
    opt-outs recorded, cases opened, acknowledged and resolved, each with its actor."""
    from orchestrator.config.settings import Settings
    from orchestrator.store import db, facts
    from orchestrator.store.audit import account_entries

    engine = db.open_database(Settings.from_env().database_url)
    try:
        with engine.connect() as conn:
            known = facts.account_row(conn, account) is not None
            entries = account_entries(conn, account)
    finally:
        engine.dispose()
    if not known and not entries:
        typer.echo(f"--account: error: unknown account {account!r}", err=True)
        raise typer.Exit(2)
    if as_json:
        found = [e.as_json() for e in entries]
        typer.echo(json.dumps({"account_id": account, "entries": found}, ensure_ascii=False))
        return
    if not entries:
        typer.echo(f"no audit entry for account {account}")
    for entry in entries:
        what = f"{entry.object_type} {entry.object_id}" if entry.object_type else ""
        detail = (
            json.dumps(entry.detail, ensure_ascii=False, sort_keys=True) if entry.detail else ""
        )
        typer.echo(
            f"{entry.time.strftime('%Y-%m-%dT%H:%M:%SZ')}  {entry.actor}  {entry.action}  "
            f"{what}  {detail}".rstrip()
        )


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
