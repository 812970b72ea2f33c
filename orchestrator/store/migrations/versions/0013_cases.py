"""cases: complaints and disputes, and the account an audit entry concerns

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A complaint or a dispute, its deadlines from the policy's SLA and who changed it.
    op.create_table(
        "case_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(), nullable=False),
        sa.Column("due_ack_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_resolve_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.account_id"],
            name=op.f("fk_case_file_account_id_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_file")),
    )
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_file_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_case_file_resolved_at_due_resolve_at"),
            ["resolved_at", "due_resolve_at"],
            unique=False,
        )
    # The account an audit entry concerns: `outreach audit --account` reads by it. The
    # imports' per-account entries name it as their object already.
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.String(), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_log_account_id"), ["account_id"], unique=False)
    op.execute("UPDATE audit_log SET account_id = object_id WHERE object_type = 'account'")


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_account_id"))
        batch_op.drop_column("account_id")
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_file_resolved_at_due_resolve_at"))
        batch_op.drop_index(batch_op.f("ix_case_file_account_id"))
    op.drop_table("case_file")
