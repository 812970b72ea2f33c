"""Tasks through the API (``store.tasks``): list, read, claim, complete.

The actor and assignee is the request's token name. Completing a task with a
``promise``, ``plan``, ``conversation`` or ``dispute`` records that event through the
events service (``services.events``: the same checks, bounds, audit entries and case,
under the idempotency key ``task:<id>:done``, so a retry records it once), then marks
the task done. A task another person holds, or one done already, is a ``Conflict``
(409) before anything is written.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.tasks import RECORDED, TaskOutcome, TaskState
from orchestrator.store import tasks
from orchestrator.web.schemas import EventIn, TaskDone
from orchestrator.web.server import Server
from orchestrator.web.services import events
from orchestrator.web.services.refusals import Invalid, Unknown

__all__ = ["claim", "complete", "listed", "read"]

_FIELDS = ("amount", "due", "instalments", "channel")


def listed(
    server: Server,
    *,
    state: TaskState | None,
    type_: str | None,
    assignee: str | None,
    overdue: bool,
) -> list[dict[str, Any]]:
    now = server.clock.now()
    with server.db.connect() as conn:
        found = tasks.list_tasks(
            conn, now=now, state=state, type_=type_, assignee=assignee, overdue=overdue
        )
    return [task.as_json(now) for task in found]


def read(server: Server, task_id: int) -> dict[str, Any]:
    with server.db.connect() as conn:
        task = tasks.find_task(conn, task_id)
    if task is None:
        raise Unknown(f"no task {task_id}", "unknown")
    return task.as_json(server.clock.now())


def claim(server: Server, task_id: int, actor: str) -> dict[str, Any]:
    now = server.clock.now()
    with server.tx() as conn:
        task = tasks.claim_task(conn, task_id, actor=actor, now=now)
    return task.as_json(now)


def complete(server: Server, task_id: int, body: TaskDone, actor: str) -> dict[str, Any]:
    """Record the outcome's event (if it has one), then mark the task done."""
    outcome = TaskOutcome(body.outcome)
    given = [name for name in _FIELDS if getattr(body, name) is not None]
    if outcome not in RECORDED and given:
        raise Invalid(
            [{"field": name, "message": f"{outcome} records nothing"} for name in given],
            "invalid",
        )
    with server.db.connect() as conn:  # who holds it, before anything is recorded
        task = tasks.find_task(conn, task_id)
        if task is None:
            raise Unknown(f"no task {task_id}", "unknown")
        tasks.check_holder(task, actor)
    answer = None
    if outcome in RECORDED:
        event = EventIn.model_validate(
            {"type": str(outcome), **body.model_dump(include=set(_FIELDS), exclude_none=True)}
        )
        _, answer = events.record_event(
            server, task.account_id, event, f"task:{task_id}:done", actor
        )
    now = server.clock.now()
    with server.tx() as conn:
        done = tasks.finish_task(conn, task_id, outcome=outcome, actor=actor, now=now)
    return {"task": done.as_json(now), "event": answer}
