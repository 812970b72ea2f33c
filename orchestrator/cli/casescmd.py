"""``outreach cases list|show|resolve``: complaints and disputes (docs/cli.md).

The same store functions as ``/api/v1/cases``; every change is audited with the OS
user as its actor. A refusal (no such case, resolved already, no resolution) is one
line on stderr and exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from orchestrator.cli.actor import cli_actor
from orchestrator.core.cases import CaseStatus
from orchestrator.errors import Refused

T = TypeVar("T")

cases_app = typer.Typer(
    name="cases", help="complaints and disputes: list, show, resolve", no_args_is_help=True
)


@contextmanager
def _engine() -> Iterator[Any]:
    from orchestrator.config.settings import Settings
    from orchestrator.store import db

    engine = db.open_database(Settings.from_env().database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def refusal_line(exc: Refused) -> str:
    """A refusal in one line: ``field: error: message`` for each problem it lists."""
    if isinstance(exc.detail, list):
        return "; ".join(f"{p['field']}: error: {p['message']}" for p in exc.detail)
    return f"error: {exc.detail}"


def _refused(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except Refused as exc:
        typer.echo(refusal_line(exc), err=True)
        raise typer.Exit(2) from None


def _line(case: dict[str, Any]) -> str:
    late = " OVERDUE" if case["overdue"] else ""
    due = case["acknowledge_due_at"] if case["status"] == "open" else case["resolve_due_at"]
    due_text = "" if case["status"] == "resolved" else f", due {due}"
    return (
        f"#{case['id']} {case['kind']} {case['category']} account {case['account_id']}: "
        f"{case['status']}{late} (opened {case['opened_at']}{due_text})"
    )


@cases_app.command("list")
def list_cases(
    status: CaseStatus | None = typer.Option(None, "--status", help="only cases in this state"),
    overdue: bool = typer.Option(False, "--overdue", help="only cases past a due time"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """Cases, oldest first: each with its state and next due time."""
    from orchestrator.clock import SystemClock
    from orchestrator.store.cases import list_cases as read

    now = SystemClock().now()
    with _engine() as engine, engine.connect() as conn:
        found = [c.as_json(now) for c in read(conn, now=now, status=status, overdue=overdue)]
    if as_json:
        typer.echo(json.dumps({"cases": found}, ensure_ascii=False))
        return
    if not found:
        typer.echo("no case")
    for case in found:
        typer.echo(_line(case))


@cases_app.command("show")
def show(
    case_id: int = typer.Argument(..., min=1, help="the case's id"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """One case: every field, and who changed it when."""
    from orchestrator.clock import SystemClock
    from orchestrator.store.cases import find_case

    now = SystemClock().now()
    with _engine() as engine, engine.connect() as conn:
        case = find_case(conn, case_id)
    if case is None:
        typer.echo(f"error: no case {case_id}", err=True)
        raise typer.Exit(2)
    data = case.as_json(now)
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    for key, value in data.items():
        if value is not None:
            typer.echo(f"{key}: {value}")


@cases_app.command("resolve")
def resolve(
    case_id: int = typer.Argument(..., min=1, help="the case's id"),
    resolution: str = typer.Option(..., "--resolution", help="how it was resolved"),
    verified: bool = typer.Option(
        False, "--verified", help="a dispute verified: collection on the account resumes"
    ),
) -> None:
    """Resolve a case. A dispute resolved --verified lifts its suppression (the daemon
    plans the account again) once no other dispute of the account holds it; without,
    the case closes and collection stays suppressed."""
    from orchestrator.clock import SystemClock
    from orchestrator.store.cases import disputes_holding, resolve_checked

    now = SystemClock().now()
    actor = cli_actor()
    with _engine() as engine:

        def write() -> Any:
            with engine.begin() as conn:
                case = resolve_checked(
                    conn, case_id, resolution=resolution, verified=verified, actor=actor, now=now
                )
                return case, disputes_holding(conn, case.account_id)

        case, holding = _refused(write)
    said = ""
    if case.kind == "dispute" and verified and holding:
        others = ", ".join(f"#{i}" for i in holding)
        still = "dispute {} is" if len(holding) == 1 else "disputes {} are"
        said = f" (collection stays suppressed: {still.format(others)} still open)"
    elif case.kind == "dispute":
        said = " (collection resumes)" if verified else " (collection stays suppressed)"
    typer.echo(f"resolved #{case.id} {case.kind} of account {case.account_id}{said}")


def register(app: typer.Typer) -> None:
    app.add_typer(cases_app)
