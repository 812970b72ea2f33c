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
    rows = conn.execute(
        sa.select(promise_t.c.id)
        .where(promise_t.c.account_id == account_id, promise_t.c.made_at <= now)
        .order_by(promise_t.c.made_at, promise_t.c.id)
    ).all()
    for row, promise in zip(rows, state.promises, strict=False):
        conn.execute(
            promise_t.update()
            .where(promise_t.c.id == row.id)
            .values(state=promise.state, kept_at=promise.kept_at, broken_at=promise.broken_at)
        )


def write_plan_states(
    conn: Connection, account_id: str, state: AccountState, now: datetime
) -> None:
    """Store what the replay derived of each payment plan (in created order): active,
    completed (every instalment paid) or broken (one missed), and each instalment's paid
    amount, so that ``account show`` and the API tell them as the engine sees them."""
    plans = conn.execute(
        sa.select(plan_t.c.id)
        .where(plan_t.c.account_id == account_id, plan_t.c.created_at <= now)
        .order_by(plan_t.c.created_at, plan_t.c.id)
    ).all()
    for row, plan in zip(plans, state.plans, strict=False):
        done = all(i.settled for i in plan.instalments)
        ended = plan.broken_at or (now if done else None)
        conn.execute(
            plan_t.update()
            .where(
                plan_t.c.id == row.id,
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
                .where(instalment_t.c.plan_id == row.id)
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
