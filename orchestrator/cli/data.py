"""``outreach db``, ``import``, ``account`` and ``keys``: the data commands.

Each command parses its arguments, calls one function of the persistence layer and
prints; problems go to stderr as ``FILE:LINE: COLUMN: message`` with exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer

from orchestrator.cli.actor import cli_actor
from orchestrator.errors import ConfigError, InputError, OutreachError

db_app = typer.Typer(help="Database schema.\n\nReference: docs/cli.md.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import accounts and payments from CSV.\n\nFormats: docs/csv.md.", no_args_is_help=True
)
account_app = typer.Typer(help="Inspect accounts.\n\nReference: docs/cli.md.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Encryption keys of personal data.\n\nReference: docs/cli.md.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(db_app, name="db")
    app.add_typer(import_app, name="import")
    app.add_typer(account_app, name="account")
    app.add_typer(keys_app, name="keys")


def _database_url() -> str:
    return os.environ.get("OUTREACH_DATABASE_URL") or "sqlite:///var/outreach.db"


def _fail(exc: OutreachError) -> NoReturn:
    from orchestrator.ingest.validation import format_input_problem

    problems = getattr(exc, "problems", None)
    if isinstance(exc, InputError) and problems:
        for problem in problems:
            typer.echo(format_input_problem(problem), err=True)
    elif problems:
        for problem in problems:
            where = problem.path if problem.line is None else f"{problem.path}:{problem.line}"
            field = f" {problem.field}:" if problem.field else ""
            typer.echo(f"{where}:{field} error: {problem.message}", err=True)
    else:
        typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _cipher() -> Any:
    from orchestrator.config.settings import Settings

    try:
        return Settings.from_env().cipher()
    except ConfigError as exc:
        _fail(exc)


def _engine() -> Any:
    """An engine on a database with this release's schema (else exit 2, saying so)."""
    from orchestrator.store.db import open_database

    return open_database(_database_url())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema on OUTREACH_DATABASE_URL (needs no keys); print
    what it did.

    Reference: docs/cli.md."""
    from sqlalchemy.exc import DBAPIError

    from orchestrator.store.db import (
        URL_VARIABLE,
        current_revision,
        database_revision,
        display_url,
        failure_reason,
        upgrade,
    )

    url = _database_url()
    before = database_revision(url)
    _refuse_unknown(url, before)
    try:
        upgrade(url)
    except DBAPIError as exc:
        if exc.statement is None:  # could not connect: the root group says so
            raise
        # Not "run db upgrade", which the root group would infer from the old revision.
        typer.echo(
            f"{URL_VARIABLE}: error: the migration failed on the database at "
            f"{display_url(url)}: {failure_reason(exc, url)}",
            err=True,
        )
        raise typer.Exit(1) from None
    after = current_revision(url)
    if before == after:
        typer.echo(f"already at {after}")
    elif before is None:
        typer.echo(f"created the schema at {after}")
    else:
        typer.echo(f"upgraded from {before} to {after}")


def _refuse_unknown(url: str, revision: str | None) -> None:
    """Exit 2 when the database is at a revision this release does not ship (a newer
    release migrated it): Alembic could neither read its history nor migrate it."""
    from orchestrator.store.db import URL_VARIABLE, display_url, known_revisions

    if revision is None or revision in known_revisions():
        return
    typer.echo(
        f"{URL_VARIABLE}: error: the database at {display_url(url)} is at revision "
        f"{revision}, which this release of outreach does not know (it needs "
        f"{known_revisions()[-1]}): run the release that migrated it, or a newer one",
        err=True,
    )
    raise typer.Exit(2)


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision and whether it is this release's (the
    head); changes nothing.

    Reference: docs/cli.md."""
    from orchestrator.store.db import database_revision, known_revisions

    head = known_revisions()[-1]
    current = database_revision(_database_url())
    if current == head:
        typer.echo(f"{current} (head)")
    elif current is None:
        typer.echo(f"no schema (head is {head}): run `outreach db upgrade`")
    elif current in known_revisions():
        typer.echo(f"{current} (head is {head}): run `outreach db upgrade`")
    else:
        typer.echo(f"{current} (not a revision this release knows; its head is {head})")


@db_app.command("history")
def db_history() -> None:
    """List the migrations this release ships, newest first, the database's marked
    ``(current)``.

    Reference: docs/cli.md."""
    from orchestrator.store.db import database_revision, migrations

    url = _database_url()
    shipped = migrations()
    current = database_revision(url)
    _refuse_unknown(url, current)
    for index, (revision, doc) in enumerate(shipped):
        marks = [m for m, on in (("head", index == 0), ("current", revision == current)) if on]
        typer.echo(f"{revision}  {doc}" + (f"  ({', '.join(marks)})" if marks else ""))
    if current is None:
        typer.echo("(the database has no schema: run `outreach db upgrade`)")


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, path: Path, label: str):
        self.bar: Any = None
        if not sys.stdout.isatty():
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        total = _count_lines(path)
        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        self.task = self.bar.add_task(label, total=max(total - 1, 0))

    def __enter__(self) -> _Progress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def __call__(self, rows: int) -> None:
        if self.bar:
            self.bar.update(self.task, completed=rows)


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


@import_app.command("accounts")
def import_accounts_cmd(
    file: Path = typer.Argument(..., help="CSV file (columns: docs/csv.md)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and count; write nothing"),
) -> None:
    """Upsert accounts by account_id; one bad row rejects the whole file.

    Columns and rules: docs/csv.md."""
    from orchestrator.ingest.importer import import_accounts

    cipher = _cipher()
    engine = _engine()
    try:
        with _Progress(file, "accounts") as progress:
            result = import_accounts(
                engine, file, cipher, dry_run=dry_run, progress=progress, actor=cli_actor()
            )
    except OutreachError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    verb = "would import" if dry_run else "imported"
    typer.echo(
        f"{file}: {verb} {result.total} accounts: {result.inserted} new, "
        f"{result.updated} updated, {result.unchanged} unchanged"
    )


@import_app.command("payments")
def import_payments_cmd(
    file: Path = typer.Argument(
        ..., help="CSV: payment_id, account_id, amount, paid_at[, currency] (docs/csv.md)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and count; write nothing"),
) -> None:
    """Record payments; idempotent by payment_id.

    Columns and rules: docs/csv.md."""
    from orchestrator.ingest.payments import import_payments

    engine = _engine()
    try:
        with _Progress(file, "payments") as progress:
            result = import_payments(
                engine, file, dry_run=dry_run, progress=progress, actor=cli_actor()
            )
    except OutreachError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    verb = "would record" if dry_run else "recorded"
    typer.echo(f"{file}: {verb} {result.inserted} payments; {result.skipped} already recorded")


@account_app.command("show")
def account_show(
    account_id: str = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object (keys: docs/cli.md)"),
    today: str | None = typer.Option(
        None, "--today", help="date for DPD (default: today in the debtor's time zone)"
    ),
) -> None:
    """The account's timeline: stage, promises, payments, decisions and events.

    Reference: docs/cli.md; decisions and reasons: docs/decisions.md."""
    from orchestrator.store.accounts import load_account
    from orchestrator.store.timeline import account_timeline

    cipher = _cipher()
    day: date | None = None
    if today:
        try:
            day = datetime.fromisoformat(today).date()
        except ValueError:
            typer.echo(f"--today: error: not an ISO date: {today!r}", err=True)
            raise typer.Exit(2) from None
    from orchestrator.core.crypto import InvalidToken

    engine = _engine()
    try:
        with engine.connect() as conn:
            try:
                account = load_account(conn, cipher, account_id)
            except InvalidToken:
                typer.echo(
                    "error: this database's personal data was encrypted with a key "
                    "that OUTREACH_DATA_KEYS does not hold",
                    err=True,
                )
                raise typer.Exit(2) from None
            if day is None:
                day = _local_today(account, datetime.now(UTC))
            timeline = account_timeline(conn, cipher, account_id, today=day)
    finally:
        engine.dispose()
    if timeline is None:
        typer.echo(f"{account_id}: error: no such account", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(timeline, ensure_ascii=False))
        return
    _print_timeline(timeline, account)


def _local_today(account: Any, now: datetime) -> date:
    """Today in the account's primary zone (the day DPD counts in), per the configured
    time-zone policy; UTC when there is no account or the configuration cannot be read."""
    if account is None:
        return now.date()
    from orchestrator.config.loading import load_config
    from orchestrator.config.settings import Settings
    from orchestrator.core.zones import local_date

    settings = Settings.from_env()
    try:
        policy = load_config(settings.config_dir, settings.templates_dir).policy
    except OutreachError:
        return now.date()
    return local_date(account, policy.timezone, now)


def _print_timeline(timeline: dict[str, Any], account: Any) -> None:
    from rich.console import Console

    from orchestrator.core.crypto import mask_email, mask_name, mask_phone

    console = Console()
    console.print(
        f"[bold]{timeline['account_id']}[/bold]  debtor {timeline['debtor_id']}  "
        f"{mask_name(account.name) if account else ''}"
    )
    console.print(
        f"status {timeline['status']}  stage {_stage_text(timeline)}  "
        f"DPD {timeline['dpd']}  balance {timeline['balance']} {account.currency if account else ''}"
    )
    if account:
        console.print(
            f"phone {mask_phone(account.phone) or '-'}  email {mask_email(account.email) or '-'}  "
            f"place {', '.join(account.places) or '-'}  zone {account.timezone or '-'}"
        )
    if timeline["opt_outs"]:
        console.print(f"opted out: {', '.join(timeline['opt_outs'])}")
    settlement = timeline.get("settlement")
    if settlement:
        console.print(
            f"settlement {settlement['state']}: pay {settlement['amount']} by "
            f"{settlement['due']}, {settlement['waived']} waived ({settlement['source']})",
            markup=False,
        )
    for channel, hours in timeline.get("best_hours", {}).items():
        learned = ", ".join(f"{h['hour']} ({h['answered']} of {h['sent']} answered)" for h in hours)
        console.print(f"best hours ({channel}, learned): {learned}", markup=False)
    # One line per entry (greppable, never wrapped mid-word): UTC time, the debtor's local
    # time, what happened, channel, the rule (stage / step / kind), detail, message id.
    console.print(
        "[bold]timeline[/bold] (UTC, debtor's local time, what, channel, "
        "stage / step / kind, detail, message)"
    )
    widths = (16, 11, 10, 7, 0, 0, 0)
    for row in timeline_rows(timeline):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        console.print(line.rstrip(), soft_wrap=True, markup=False, highlight=False)


def _stage_text(timeline: dict[str, Any]) -> str:
    """``M2 (since 2026-03-23 04:00 UTC, balance then 200.00)``, or ``-`` before the
    account's first planning (the stage is what planning last found)."""
    if not timeline["stage"]:
        return "-"
    since = (timeline.get("stage_entered_at") or "").replace("T", " ").replace(":00Z", " UTC")
    then = timeline.get("balance_at_stage_entry")
    return f"{timeline['stage']} (since {since}" + (f", balance then {then})" if then else ")")


def timeline_rows(timeline: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per decision, delivery, click, reply, promise, plan, payment and opt-out, in
    time order (rows of one instant in the order below): (UTC time, debtor's local time,
    what, channel, rule, detail, message)."""
    rows = [*_decision_rows(timeline), *_event_rows(timeline), *_money_rows(timeline)]
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0] or "", i))
    return [rows[i][1] for i in order]


Row = tuple[str, tuple[str, ...]]  # (UTC time to sort by, the cells)


def _short(iso: str | None) -> str:
    return (iso or "").replace("T", " ").replace(":00Z", "").replace("Z", "")


def _decision_rows(timeline: dict[str, Any]) -> Iterator[Row]:
    for d in timeline["decisions"]:
        local = (d["local_time"] or "")[11:16] + (d["local_time"] or "")[19:]
        rule = " / ".join(x for x in (d["stage"], d["step"], d["kind"]) if x)
        detail = [d["reason"] or ""]
        if d["until"]:
            detail.append(f"until {_short(d['until'])}")
        if d["to"]:
            detail.append(f"to {d['to']}")
        cells = (
            _short(d["time"]),
            local,
            d["decision"],
            d["channel"] or "",
            rule,
            " ".join(x for x in detail if x),
            d["message_id"] or "",
        )
        yield d["time"], cells


def _event_rows(timeline: dict[str, Any]) -> Iterator[Row]:
    for e in timeline["events"]:
        if e["type"] in ("promise", "payment", "plan"):  # shown with their amounts
            continue
        said = " ".join(x for x in (e["status"], e.get("text") and repr(e["text"])) if x)
        cells = (
            _short(e["time"]),
            "",
            e["type"],
            e["channel"] or "",
            "",
            said,
            e["message_id"] or "",
        )
        yield e["time"], cells


def _money_rows(timeline: dict[str, Any]) -> Iterator[Row]:
    """Promises, plans and payments, with their amounts."""
    for p in timeline["promises"]:
        if p.get("made_at") and "waived" in p:
            state = {"kept": "settled", "broken": "lapsed"}.get(p["state"], p["state"])
            said = f"{p['amount']} due {p['due']}, {p['waived']} waived: {state}"
            yield p["made_at"], (_short(p["made_at"]), "", "settlement", "", "", said, "")
        elif p.get("made_at"):
            said = f"{p['amount']} due {p['due']}: {p['state']}"
            yield p["made_at"], (_short(p["made_at"]), "", "promise", "", "", said, "")
    for p in timeline.get("plans", []):
        dues = ", ".join(f"{i['amount']} due {i['due']} ({i['state']})" for i in p["instalments"])
        said = f"{dues}: {p['state']}"
        yield p["created_at"], (_short(p["created_at"]), "", "plan", "", "", said, "")
    for p in timeline["payments"]:
        yield p["paid_at"], (_short(p["paid_at"]), "", "payment", "", "", p["amount"], "")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt personal data with the first key of OUTREACH_DATA_KEYS; recompute
    every blind index. Afterwards the older keys may be dropped.

    Reference: docs/cli.md; the procedure: README.md, "Security"."""
    from cryptography.fernet import InvalidToken

    from orchestrator.store.keys import rotate_keys

    cipher = _cipher()
    engine = _engine()
    try:
        count = rotate_keys(engine, cipher)
    except InvalidToken:
        typer.echo(
            "OUTREACH_DATA_KEYS: error: some data was encrypted with a key that is not "
            "listed; nothing was changed",
            err=True,
        )
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(f"re-encrypted {count} rows with the first key")
