"""occurrence priority: the policy's order of due sends, worked out at planning

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # '' for every row planned before (and under a policy without ``priority``): due
    # sends then take their turn oldest planned first, as they did.
    with op.batch_alter_table("occurrence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.String(), nullable=False, server_default=""))
    # Budgets count the sends of a channel in a window, over all debtors.
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_send_channel_sent_at"), ["channel", "sent_at"])


def downgrade() -> None:
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_send_channel_sent_at"))
    with op.batch_alter_table("occurrence", schema=None) as batch_op:
        batch_op.drop_column("priority")
