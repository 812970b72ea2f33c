"""account plan: when each account is planned again, in a narrow table of its own

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 13:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every planning round rewrites every account's due time: in ``account`` that rewrote a
# wide row and (on PostgreSQL) each of its seven index entries. The columns move to
# ``account_plan``; the values move with them. The columns are dropped with SQLite's own
# ALTER TABLE ... DROP COLUMN (3.35 and later), not a batch copy of ``account``, which
# the tables referring to it would stop.


def upgrade() -> None:
    op.create_table(
        "account_plan",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("plan_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_seq", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.account_id"],
            name=op.f("fk_account_plan_account_id_account"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_plan")),
    )
    op.create_index(
        op.f("ix_account_plan_plan_due_at"), "account_plan", ["plan_due_at"], unique=False
    )
    op.execute(
        "INSERT INTO account_plan (account_id, plan_due_at, plan_seq) "
        "SELECT account_id, plan_due_at, plan_seq FROM account "
        "WHERE plan_due_at IS NOT NULL OR plan_seq <> 0"
    )
    op.drop_index("ix_account_plan_due_at", table_name="account")
    op.execute("ALTER TABLE account DROP COLUMN plan_due_at")
    op.execute("ALTER TABLE account DROP COLUMN plan_seq")


def downgrade() -> None:
    op.execute("ALTER TABLE account ADD COLUMN plan_due_at TIMESTAMP WITH TIME ZONE")
    op.execute("ALTER TABLE account ADD COLUMN plan_seq INTEGER DEFAULT 0 NOT NULL")
    op.create_index("ix_account_plan_due_at", "account", ["plan_due_at"], unique=False)
    op.execute(
        "UPDATE account SET plan_due_at = (SELECT p.plan_due_at FROM account_plan p "
        "WHERE p.account_id = account.account_id), plan_seq = coalesce((SELECT p.plan_seq "
        "FROM account_plan p WHERE p.account_id = account.account_id), 0)"
    )
    op.drop_index(op.f("ix_account_plan_plan_due_at"), table_name="account_plan")
    op.drop_table("account_plan")
