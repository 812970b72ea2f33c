"""incremental planning: when each account is planned again, and under which configuration

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing accounts get NULL: planned at the next round, as before.
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("plan_seq", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index(batch_op.f("ix_account_plan_due_at"), ["plan_due_at"], unique=False)
    op.create_table(
        "planner_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_digest", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_planner_state")),
    )


def downgrade() -> None:
    op.drop_table("planner_state")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_plan_due_at"))
        batch_op.drop_column("plan_seq")
        batch_op.drop_column("plan_due_at")
