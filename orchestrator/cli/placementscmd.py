"""``outreach placements place|recall|list``: accounts placed with a collection agency
(委外) and recalled (docs/cli.md).

The same store functions as ``/api/v1/placements``; every placement and recall is
audited with the OS user as its actor. A refusal (an unknown agency or account, a bad
rule) is one line on stderr and exit 2.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from orchestrator.cli.actor import cli_actor
from orchestrator.cli.casescmd import _engine, _refused
from orchestrator.errors import ConfigError

placements_app = typer.Typer(
    name="placements",
    help="accounts placed with collection agencies: place, recall, list",
    no_args_is_help=True,
)


def _setup() -> tuple[Any, Any]:
    """The configuration and the data cipher (exit 2 with the reason if either fails)."""
    from orchestrator.config.loading import load_config
    from orchestrator.config.settings import Settings

    settings = Settings.from_env()
    try:
        return load_config(settings.config_dir, settings.templates_dir), settings.cipher()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@placements_app.command("place")
def place_cmd(
    agency: str = typer.Option(..., "--agency", help="the agency's id (creditors.yaml agencies)"),
    accounts: list[str] = typer.Option(
        [], "--account", help="an account to place (repeat for more)"
    ),
    rule: str | None = typer.Option(
        None, "--rule", help="select accounts: stage=ID,no_contact_days=N (either or both)"
    ),
) -> None:
    """Place accounts with an agency and write its placement file (CSV and JSON, the
    fields its agreement names, personal ones in clear). Our own collection and service
    sends of those accounts stop (``placed``) until they are recalled."""
    from orchestrator.clock import SystemClock
    from orchestrator.store.placements import parse_rule, place, select_by_rule

    if bool(accounts) == bool(rule):
        typer.echo("error: give --account ID (one or more) or --rule, not both", err=True)
        raise typer.Exit(2)
    parsed = _refused(lambda: parse_rule(rule)) if rule else None
    config, cipher = _setup()
    now = SystemClock().now()
    actor = cli_actor()
    with _engine() as engine:

        def write() -> Any:
            with engine.begin() as conn:
                chosen = select_by_rule(conn, parsed, now) if parsed else accounts
                return place(
                    conn, config, cipher, agency=agency, account_ids=chosen, actor=actor, now=now
                )

        placed = _refused(write)
    typer.echo(f"placed {len(placed.placements)} account(s) with {agency}")
    if placed.already:
        typer.echo(f"already placed, left as they are: {', '.join(placed.already)}")
    for path in placed.files:
        typer.echo(f"wrote {path} (holds personal data in clear)")


@placements_app.command("recall")
def recall_cmd(
    accounts: list[str] = typer.Option([], "--account", help="an account to recall (repeat)"),
    agency: str | None = typer.Option(None, "--agency", help="recall all of this agency's"),
) -> None:
    """Recall placements in force: our own collection of those accounts resumes."""
    from orchestrator.clock import SystemClock
    from orchestrator.store.placements import recall

    if not accounts and agency is None:
        typer.echo("error: give --account ID (one or more) or --agency", err=True)
        raise typer.Exit(2)
    now = SystemClock().now()
    actor = cli_actor()
    with _engine() as engine, engine.begin() as conn:
        recalled = recall(conn, account_ids=accounts or None, agency=agency, actor=actor, now=now)
    typer.echo(f"recalled {len(recalled)} placement(s)")
    for p in recalled:
        typer.echo(f"#{p.id} account {p.account_id} from {p.agency}")


@placements_app.command("list")
def list_cmd(
    agency: str | None = typer.Option(None, "--agency", help="only this agency's"),
    account: str | None = typer.Option(None, "--account", help="only this account's"),
    in_force: bool = typer.Option(False, "--in-force", help="only those not recalled"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """Placements, oldest first."""
    from orchestrator.store.placements import list_placements

    with _engine() as engine, engine.connect() as conn:
        found = list_placements(conn, agency=agency, account_id=account, in_force=in_force)
    if as_json:
        typer.echo(json.dumps({"placements": [p.as_json() for p in found]}))
        return
    if not found:
        typer.echo("no placement")
    for p in found:
        data = p.as_json()
        state = "in force" if p.recalled_at is None else f"recalled {data['recalled_at']}"
        typer.echo(
            f"#{p.id} account {p.account_id} with {p.agency}: placed {data['placed_at']} "
            f"by {p.actor}, {state}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(placements_app)
