"""``outreach tasks list|claim|done``: the work queue (docs/cli.md).

The same store functions and services as ``/api/v1/tasks``; the OS user is the assignee
and the actor of every change. ``done`` with an outcome that records an event (promise,
plan, conversation, dispute) records it as the API does (its checks and bounds), so it
needs the server's environment (keys, configuration). A refusal (no such task, claimed
by someone else, done already, a promise out of bounds) is one line on stderr, exit 2.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import typer

from orchestrator.cli.actor import cli_actor
from orchestrator.cli.casescmd import _engine, _refused
from orchestrator.core.tasks import RECORDED, TaskOutcome, TaskState

tasks_app = typer.Typer(
    name="tasks", help="the work queue: list, claim, done", no_args_is_help=True
)


def _line(task: dict[str, Any]) -> str:
    late = " OVERDUE" if task["overdue"] else ""
    who = f" by {task['assignee']}" if task["assignee"] else ""
    link = f" case #{task['case_id']}" if task["case_id"] else ""
    outcome = f" ({task['outcome']})" if task["outcome"] else ""
    return (
        f"#{task['id']} p{task['priority']} {task['type']} account {task['account_id']}{link}: "
        f"{task['state']}{who}{outcome}{late} (due {task['due_at']})"
    )


@tasks_app.command("list")
def list_tasks(
    state: TaskState | None = typer.Option(None, "--state", help="only tasks in this state"),
    type_: str | None = typer.Option(None, "--type", help="only tasks of this type"),
    mine: bool = typer.Option(False, "--mine", help="only the tasks you hold"),
    overdue: bool = typer.Option(False, "--overdue", help="only tasks past their due time"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """Tasks, most urgent first (priority 1 first, then due time)."""
    from orchestrator.clock import SystemClock
    from orchestrator.store.tasks import list_tasks as read

    now = SystemClock().now()
    assignee = cli_actor() if mine else None
    with _engine() as engine, engine.connect() as conn:
        found = read(conn, now=now, state=state, type_=type_, assignee=assignee, overdue=overdue)
    listed = [t.as_json(now) for t in found]
    if as_json:
        typer.echo(json.dumps({"tasks": listed}, ensure_ascii=False))
        return
    if not listed:
        typer.echo("no task")
    for task in listed:
        typer.echo(_line(task))


@tasks_app.command("claim")
def claim(task_id: int = typer.Argument(..., min=1, help="the task's id")) -> None:
    """Take a task: you become its assignee (someone else's is refused)."""
    from orchestrator.clock import SystemClock
    from orchestrator.store.tasks import claim_task

    now = SystemClock().now()
    actor = cli_actor()
    with _engine() as engine:

        def write() -> Any:
            with engine.begin() as conn:
                return claim_task(conn, task_id, actor=actor, now=now)

        task = _refused(write)
    typer.echo(_line(task.as_json(now)))


@tasks_app.command("done")
def done(
    task_id: int = typer.Argument(..., min=1, help="the task's id"),
    outcome: TaskOutcome = typer.Option(..., "--outcome", help="how it ended"),
    amount: str | None = typer.Option(None, "--amount", help="a promise's amount, e.g. 50.00"),
    due: str | None = typer.Option(None, "--due", help="a promise's due date, YYYY-MM-DD"),
    channel: str | None = typer.Option(None, "--channel", help="the channel it happened on"),
) -> None:
    """Finish a task with its outcome; a promise, conversation or dispute is recorded on
    the account as the REST API records it (a plan: through the API, it has instalments)."""
    fields = {"amount": amount, "due": _date(due), "channel": channel}
    given = {k: v for k, v in fields.items() if v is not None}
    if outcome == TaskOutcome.plan:
        typer.echo("outcome: error: record a plan through the API (it has instalments)", err=True)
        raise typer.Exit(2)
    if outcome in RECORDED:
        data = _complete_recorded(task_id, {"outcome": str(outcome), **given})
    else:
        data = _complete_plain(task_id, outcome, given)
    event = data["event"]
    said = f", recorded {event['type']}" if event else ""
    typer.echo(_line(data["task"]) + said)


def _date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        typer.echo(f"due: error: {text!r} is not a date (YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from None


def _complete_plain(task_id: int, outcome: TaskOutcome, given: dict[str, Any]) -> dict[str, Any]:
    from orchestrator.clock import SystemClock
    from orchestrator.store.tasks import finish_task

    if given:
        for name in given:
            typer.echo(f"{name}: error: {outcome} records nothing", err=True)
        raise typer.Exit(2)
    now = SystemClock().now()
    actor = cli_actor()
    with _engine() as engine:

        def write() -> Any:
            with engine.begin() as conn:
                return finish_task(conn, task_id, outcome=outcome, actor=actor, now=now)

        task = _refused(write)
    return {"task": task.as_json(now), "event": None}


def _complete_recorded(task_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Through the server's service, as ``POST /api/v1/tasks/{id}/complete``."""
    from pydantic import ValidationError

    from orchestrator.cli.simcmd import _fail
    from orchestrator.errors import OutreachError
    from orchestrator.web.app import build_server
    from orchestrator.web.schemas import TaskDone
    from orchestrator.web.services.tasks import complete

    try:
        parsed = TaskDone.model_validate(body)
    except ValidationError as exc:
        for error in exc.errors():
            typer.echo(f"{error['loc'][0]}: error: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    try:
        server = build_server()
    except OutreachError as exc:
        _fail(exc)
        raise typer.Exit(2) from None
    try:
        return _refused(lambda: complete(server, task_id, parsed, cli_actor()))
    finally:
        server.executor.shutdown()
        server.db.dispose()


def register(app: typer.Typer) -> None:
    app.add_typer(tasks_app)
