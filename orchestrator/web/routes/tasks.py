"""``/api/v1/tasks``: the work queue (``services.tasks``).

Bearer token as every ``/api/v1`` route; the token's name is the assignee of a claim and
the actor of every change. A refusal is a 404 (unknown task or account), a 409 (the task
is claimed by someone else, or done) or a 422 with the reason (docs/http.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam

from orchestrator.core.tasks import TaskState
from orchestrator.web.routes.api import Actor, api
from orchestrator.web.schemas import TaskDone, TaskDoneOut, TaskList, TaskOut
from orchestrator.web.server import ServerDep
from orchestrator.web.services import tasks
from orchestrator.web.services.refusals import Refused

router = APIRouter()

TaskId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such task (or, completing, no such account)"},
    409: {"description": "the task is claimed by someone else, or done: nothing written"},
}
Name = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")]


@router.get("/api/v1/tasks", dependencies=api, response_model=TaskList)
def get_tasks(
    server: ServerDep,
    state: Annotated[TaskState | None, Query(description="only tasks in this state")] = None,
    type: Annotated[  # noqa: A002 - the query parameter's name
        str | None,
        Query(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$", description="a type"),
    ] = None,
    assignee: Name = None,
    overdue: Annotated[bool, Query(description="only tasks not done past their due time")] = False,
) -> dict[str, object]:
    """Tasks, most urgent first: by priority (1 first), then due time."""
    return {
        "tasks": tasks.listed(server, state=state, type_=type, assignee=assignee, overdue=overdue)
    }


@router.get("/api/v1/tasks/{task_id}", dependencies=api, response_model=TaskOut)
def get_task(task_id: TaskId, server: ServerDep) -> dict[str, object]:
    try:
        return tasks.read(server, task_id)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.post(
    "/api/v1/tasks/{task_id}/claim", dependencies=api, response_model=TaskOut, responses=REFUSED
)
def post_claim(task_id: TaskId, server: ServerDep, actor: Actor) -> dict[str, object]:
    """Take the task: its assignee becomes the token's name. Claiming your own task again
    is a no-op; one claimed by someone else, or done, is 409."""
    try:
        return tasks.claim(server, task_id, actor)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.post(
    "/api/v1/tasks/{task_id}/complete",
    dependencies=api,
    response_model=TaskDoneOut,
    responses=REFUSED,
)
def post_complete(
    task_id: TaskId, body: TaskDone, server: ServerDep, actor: Actor
) -> dict[str, object]:
    """Finish the task with its outcome (claiming it if it was open). A promise, plan,
    conversation or dispute is recorded as the events API records it, with its checks:
    a refused one leaves the task as it was."""
    try:
        return tasks.complete(server, task_id, body, actor)
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None
