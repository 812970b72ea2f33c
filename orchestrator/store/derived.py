"""The promise and payment-plan states a replay derived, written back to their rows.

Planning rebuilds each account's state from its facts (``replay``); what it derives of
promises (kept, broken) and payment plans (completed, broken, each instalment's paid
amount) is written back when an account is planned after a fact arrived, so that
``account show`` and the API tell them as the engine sees them.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.core.state import AccountState
from orchestrator.store.tables import InstalmentPlan, InstalmentRow, Promise, table_of

__all__ = ["write_plan_states", "write_promise_states"]

promise_t = table_of(Promise)
plan_t = table_of(InstalmentPlan)
instalment_t = table_of(InstalmentRow)


def write_promise_states(
    conn: Connection, account_id: str, state: AccountState, now: datetime
) -> None:
    """Store the promise states the replay derived (p1, p2... in made order)."""
    ids = _ids_in_order(conn, promise_t, promise_t.c.made_at, account_id, now)
    for promise_id, promise in zip(ids, state.promises, strict=False):
        conn.execute(
            promise_t.update()
            .where(promise_t.c.id == promise_id)
            .values(state=promise.state, kept_at=promise.kept_at, broken_at=promise.broken_at)
        )


def write_plan_states(
    conn: Connection, account_id: str, state: AccountState, now: datetime
) -> None:
    """Store what the replay derived of each payment plan (in created order): active,
    completed (every instalment paid) or broken (one missed), and each instalment's paid
    amount, so that ``account show`` and the API tell them as the engine sees them."""
    plan_ids = _ids_in_order(conn, plan_t, plan_t.c.created_at, account_id, now)
    for plan_id, plan in zip(plan_ids, state.plans, strict=False):
        done = all(i.settled for i in plan.instalments)
        ended = plan.broken_at or (now if done else None)
        conn.execute(
            plan_t.update()
            .where(
                plan_t.c.id == plan_id,
                sa.or_(plan_t.c.state == "active", plan_t.c.ended_at.is_(None)),
            )
            .values(
                state="broken" if plan.broken_at else "completed" if done else "active",
                ended_at=ended,
            )
        )
        ids = (
            conn.execute(
                sa.select(instalment_t.c.id)
                .where(instalment_t.c.plan_id == plan_id)
                .order_by(instalment_t.c.due, instalment_t.c.id)
            )
            .scalars()
            .all()
        )
        for inst_id, inst in zip(ids, plan.instalments, strict=False):
            conn.execute(
                instalment_t.update()
                .where(instalment_t.c.id == inst_id)
                .values(
                    paid=min(inst.paid, inst.amount),
                    state="paid"
                    if inst.settled
                    else "missed"
                    if plan.broken_at and inst.due < plan.broken_at.date()
                    else "pending",
                )
            )


def _ids_in_order(
    conn: Connection, table: sa.Table, made: sa.Column[datetime], account_id: str, now: datetime
) -> list[int]:
    """The ids of an account's rows made by ``now``, in the order made: the order the
    replay numbers them in."""
    return list(
        conn.execute(
            sa.select(table.c.id)
            .where(table.c.account_id == account_id, made <= now)
            .order_by(made, table.c.id)
        ).scalars()
    )
