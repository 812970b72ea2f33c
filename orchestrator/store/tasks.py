"""Tasks in the database (``task``): create one from a rule, read, list, claim, finish,
and the daemon's sweep for the rules read from the accounts' facts (promises broken, a
plan broken, an account nobody reached). Every change is audited (``store.audit``) with
its actor in the caller's transaction.

One open task per account and type is a database constraint (``open_key``): a rule
firing again while its task is open adds nothing. What a finished task records on the
account (a promise, a plan, ...) is the events API's work (``web.services.tasks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchestrator.config.models import TaskPolicy, TaskRule
from orchestrator.core.records import iso_utc
from orchestrator.core.tasks import TaskOutcome, TaskState, is_overdue
from orchestrator.errors import Conflict, Unknown
from orchestrator.store import audit
from orchestrator.store.db import insert_for
from orchestrator.store.tables import (
    AccountRow,
    DeliveryEvent,
    InstalmentPlan,
    OccurrenceRow,
    Promise,
    Send,
    Task,
    table_of,
)

__all__ = [
    "SYSTEM",
    "TaskRow",
    "check_holder",
    "claim_task",
    "create_task",
    "finish_task",
    "find_task",
    "list_tasks",
    "sweep",
]

task_t = table_of(Task)
account_t = table_of(AccountRow)
promise_t = table_of(Promise)
plan_t = table_of(InstalmentPlan)
send_t = table_of(Send)
delivery_t = table_of(DeliveryEvent)
occurrence_t = table_of(OccurrenceRow)

SYSTEM = "rules"  # the actor of a task a rule made
DELIVERED = ("delivered", "answered", "opened")  # a contact that reached the person


@dataclass(frozen=True)
class TaskRow:
    id: int
    account_id: str
    type: str
    priority: int
    state: str
    due_at: datetime
    case_id: int | None
    message_id: str | None
    created_at: datetime
    created_by: str
    assignee: str | None
    claimed_at: datetime | None
    done_at: datetime | None
    outcome: str | None

    @classmethod
    def of(cls, row: Row[Any]) -> TaskRow:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    def overdue(self, now: datetime) -> bool:
        return is_overdue(self.state, self.due_at, now)

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "type": self.type,
            "priority": self.priority,
            "state": self.state,
            "overdue": self.overdue(now),
            "due_at": iso_utc(self.due_at),
            "case_id": self.case_id,
            "message_id": self.message_id,
            "created_at": iso_utc(self.created_at),
            "created_by": self.created_by,
            "assignee": self.assignee,
            "claimed_at": iso_utc(self.claimed_at),
            "done_at": iso_utc(self.done_at),
            "outcome": self.outcome,
        }


def create_task(
    conn: Connection,
    rule: TaskRule,
    *,
    account_id: str,
    now: datetime,
    actor: str = SYSTEM,
    case_id: int | None = None,
    message_id: str | None = None,
) -> TaskRow | None:
    """A new open task of ``rule`` on the account, audited; ``None`` if the account has
    an open task of that type already (it is left as it is)."""
    task_id = conn.execute(
        _insert_open(conn)
        .values(_new_task(rule, account_id, now, actor, case_id, message_id))
        .returning(task_t.c.id)
    ).scalar()
    if task_id is None:
        return None
    task = _reread(conn, task_id)
    _audit(conn, task, actor, now, "task.created", _created(rule, case_id))
    return task


def _insert_open(conn: Connection) -> Any:
    """An insert of tasks that leaves out one whose account has an open task of its
    type already (``open_key``)."""
    insert = insert_for(conn)
    return insert(task_t).on_conflict_do_nothing(index_elements=["open_key"])


def _new_task(
    rule: TaskRule,
    account_id: str,
    now: datetime,
    actor: str,
    case_id: int | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The row of a new open task of ``rule`` on the account."""
    return {
        "account_id": account_id,
        "type": rule.type,
        "priority": rule.priority,
        "state": str(TaskState.open),
        "open_key": f"{account_id}:{rule.type}",
        "due_at": now + rule.due.delta,
        "case_id": case_id,
        "message_id": message_id,
        "created_at": now,
        "created_by": actor,
        "updated_at": now,
    }


def _created(rule: TaskRule, case_id: int | None) -> dict[str, Any]:
    """What the audit entry of a new task says of it."""
    return {"type": rule.type, "priority": rule.priority, "case_id": case_id}


def find_task(conn: Connection, task_id: int) -> TaskRow | None:
    row = conn.execute(sa.select(task_t).where(task_t.c.id == task_id)).first()
    return None if row is None else TaskRow.of(row)


def list_tasks(
    conn: Connection,
    *,
    now: datetime,
    state: TaskState | None = None,
    type_: str | None = None,
    assignee: str | None = None,
    overdue: bool = False,
) -> list[TaskRow]:
    """Tasks, most urgent first (priority, then due time, then id)."""
    t = task_t.c
    query = sa.select(task_t).order_by(t.priority, t.due_at, t.id)
    if state is not None:
        query = query.where(t.state == str(state))
    if type_ is not None:
        query = query.where(t.type == type_)
    if assignee is not None:
        query = query.where(t.assignee == assignee)
    if overdue:
        query = query.where(t.state != str(TaskState.done), t.due_at <= now)
    return [TaskRow.of(row) for row in conn.execute(query).all()]


def claim_task(conn: Connection, task_id: int, *, actor: str, now: datetime) -> TaskRow:
    """``actor`` takes the task; claiming one's own claimed task again changes nothing.
    ``Unknown`` if there is no such task, ``Conflict`` if another has it or it is done."""
    task = _found(conn, task_id)
    if task.state == TaskState.claimed and task.assignee == actor:
        return task
    check_holder(task, actor)
    done = conn.execute(
        task_t.update()
        .where(task_t.c.id == task_id, task_t.c.state == str(TaskState.open))
        .values(state=str(TaskState.claimed), assignee=actor, claimed_at=now, updated_at=now)
    ).rowcount
    if not done:  # a concurrent request claimed it first
        check_holder(_found(conn, task_id), actor)
    _audit(conn, task, actor, now, "task.claimed", {})
    return _reread(conn, task_id)


def finish_task(
    conn: Connection, task_id: int, *, outcome: TaskOutcome, actor: str, now: datetime
) -> TaskRow:
    """Mark the task done with ``outcome`` (claiming it for ``actor`` if it was open).
    ``Conflict`` if another person has it or it is done already."""
    task = _found(conn, task_id)
    check_holder(task, actor)
    values: dict[str, Any] = {
        "state": str(TaskState.done),
        "open_key": None,
        "outcome": str(outcome),
        "done_at": now,
        "assignee": actor,
        "updated_at": now,
    }
    if task.claimed_at is None:
        values["claimed_at"] = now
    done = conn.execute(
        task_t.update()
        .where(
            task_t.c.id == task_id,
            task_t.c.state != str(TaskState.done),
            sa.or_(task_t.c.assignee.is_(None), task_t.c.assignee == actor),
        )
        .values(**values)
    ).rowcount
    if not done:  # a concurrent request finished or claimed it first
        check_holder(_found(conn, task_id), actor)
    _audit(conn, task, actor, now, "task.done", {"outcome": str(outcome)})
    return _reread(conn, task_id)


def _found(conn: Connection, task_id: int) -> TaskRow:
    task = find_task(conn, task_id)
    if task is None:
        raise Unknown(f"no task {task_id}", "unknown")
    return task


def check_holder(task: TaskRow, actor: str) -> None:
    """``Conflict`` unless ``actor`` may act on the task: it is not done, and it is open
    or claimed by ``actor``."""
    if task.state == TaskState.done:
        raise Conflict(f"task {task.id} is done already", "done")
    if task.state == TaskState.claimed and task.assignee != actor:
        raise Conflict(f"task {task.id} is claimed by {task.assignee}", "claimed")


def _reread(conn: Connection, task_id: int) -> TaskRow:
    found = find_task(conn, task_id)
    assert found is not None
    return found


def _audit(
    conn: Connection, task: TaskRow, actor: str, now: datetime, action: str, detail: dict[str, Any]
) -> None:
    audit.write(
        conn,
        now=now,
        actor=actor,
        action=action,
        object_type="task",
        object_id=str(task.id),
        account_id=task.account_id,
        detail=detail or None,
    )


# --- the daemon's sweep ------------------------------------------------------------------


def _last_made(type_: str) -> sa.ScalarSelect[Any]:
    """When the account's last task of ``type_`` was made (NULL: never)."""
    return (
        sa.select(sa.func.max(task_t.c.created_at))
        .where(task_t.c.account_id == account_t.c.account_id, task_t.c.type == type_)
        .scalar_subquery()
    )


def _promises_broken(conn: Connection, rule: TaskRule, count: int) -> list[str]:
    """Accounts with ``count`` promises broken since their last task of this type."""
    last = (
        sa.select(sa.func.max(task_t.c.created_at))
        .where(task_t.c.account_id == promise_t.c.account_id, task_t.c.type == rule.type)
        .scalar_subquery()
    )
    query = (
        sa.select(promise_t.c.account_id)
        .where(
            promise_t.c.state == "broken",
            sa.or_(last.is_(None), promise_t.c.broken_at > last),
        )
        .group_by(promise_t.c.account_id)
        .having(sa.func.count() >= count)
    )
    return list(conn.execute(query).scalars())


def _plans_broken(conn: Connection, rule: TaskRule) -> list[str]:
    last = (
        sa.select(sa.func.max(task_t.c.created_at))
        .where(task_t.c.account_id == plan_t.c.account_id, task_t.c.type == rule.type)
        .scalar_subquery()
    )
    query = sa.select(plan_t.c.account_id).where(
        plan_t.c.state == "broken", sa.or_(last.is_(None), plan_t.c.ended_at > last)
    )
    return sorted(set(conn.execute(query).scalars()))


def _unreached(
    conn: Connection, stages: list[str], days: int, type_: str, now: datetime
) -> list[str]:
    """Accounts in ``stages`` for ``days`` or more that we have been working for ``days``
    or more (a step of theirs was planned that long ago), with no delivered contact in
    the last ``days`` days and no task of this type made in them; not a settled one (a
    settlement paid: nothing is left to collect, and nothing is sent to reach it). An
    account imported today is nobody's failure to reach yet: at go-live, or when a
    portfolio arrives, nothing is "unreached" until its contacts have had ``days`` to
    get through."""
    since = now - timedelta(days=days)
    reached = (
        sa.select(send_t.c.account_id)
        .join(delivery_t, delivery_t.c.send_id == send_t.c.id)
        .where(delivery_t.c.status.in_(DELIVERED), delivery_t.c.time > since)
    )
    worked = sa.exists().where(
        occurrence_t.c.account_id == account_t.c.account_id,
        occurrence_t.c.planned_at <= since,
    )
    settled = sa.select(promise_t.c.account_id).where(
        promise_t.c.waived.is_not(None), promise_t.c.state == "kept"
    )
    last = _last_made(type_)
    query = sa.select(account_t.c.account_id).where(
        account_t.c.stage.in_(stages),
        sa.or_(account_t.c.stage_entered_at.is_(None), account_t.c.stage_entered_at <= since),
        worked,
        account_t.c.account_id.not_in(reached),
        account_t.c.account_id.not_in(settled),
        sa.or_(last.is_(None), last <= since),
    )
    return list(conn.execute(query.order_by(account_t.c.account_id)).scalars())


def sweep(conn: Connection, policy: TaskPolicy, now: datetime) -> int:
    """Make the tasks of the rules read from the accounts' facts; how many were made.
    In bulk: one insert and one audit insert per rule, however many accounts it finds
    (a portfolio's first unreached round can find a fifth of its accounts)."""
    rules = policy.rules
    found: list[tuple[TaskRule, list[str]]] = []
    if rules.promises_broken is not None:
        rule = rules.promises_broken
        found.append((rule, _promises_broken(conn, rule, policy.promises_broken)))
    if rules.plan_broken is not None:
        found.append((rules.plan_broken, _plans_broken(conn, rules.plan_broken)))
    if rules.unreached is not None:
        u = rules.unreached
        found.append((u, _unreached(conn, u.stages, u.days, u.type, now)))
    return sum(_create_many(conn, rule, accounts, now) for rule, accounts in found)


_SWEEP_PAGE = 2000  # accounts per insert: 11 parameters each, within SQLite's 32,766


def _create_many(conn: Connection, rule: TaskRule, account_ids: list[str], now: datetime) -> int:
    """``create_task`` for many accounts by the rules (``SYSTEM``): those with an open
    task of the type already are left as they are. How many were made."""
    statement = _insert_open(conn).returning(task_t.c.id, task_t.c.account_id)
    detail = _created(rule, None)
    made = 0
    for at in range(0, len(account_ids), _SWEEP_PAGE):
        values = [
            _new_task(rule, account_id, now, SYSTEM)
            for account_id in account_ids[at : at + _SWEEP_PAGE]
        ]
        new = conn.execute(statement.values(values)).all()
        if new:
            audit.write_many(
                conn,
                now=now,
                actor=SYSTEM,
                action="task.created",
                object_type="task",
                entries=[(str(task_id), account_id, detail) for task_id, account_id in new],
            )
        made += len(new)
    return made
