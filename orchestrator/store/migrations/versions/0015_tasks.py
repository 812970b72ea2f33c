"""tasks: the work queue

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 10:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A task for a person; open_key (account:type while not done) keeps one open task
    # per account and type.
    op.create_table(
        "task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("open_key", sa.String(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("assignee", sa.String(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.account_id"], name=op.f("fk_task_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_task_case_id_case_file")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
        sa.UniqueConstraint("open_key", name=op.f("uq_task_open_key")),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_state_due_at"), ["state", "due_at"], unique=False)
    # The webhook events of tasks and cases are read from audit_log: start at its end,
    # so that subscribing does not post the past.
    for source in ("task", "case"):
        op.execute(
            sa.text(
                f"INSERT INTO webhook_cursor (source, last_id, start_id, updated_at) "
                f"SELECT '{source}', COALESCE(MAX(id), 0), COALESCE(MAX(id), 0), "
                f"CURRENT_TIMESTAMP FROM audit_log"
            )
        )


def downgrade() -> None:
    op.execute("DELETE FROM webhook_cursor WHERE source IN ('task', 'case')")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_state_due_at"))
        batch_op.drop_index(batch_op.f("ix_task_account_id"))
    op.drop_table("task")
