"""decision without channel: an account that could not be planned has none

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A planning failure (reason bad_data) is recorded for the account, not for a step of
    # a channel: its channel and kind are NULL. Existing rows keep theirs.
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.alter_column("channel", existing_type=sa.String(), nullable=True)
        batch_op.alter_column("kind", existing_type=sa.String(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM decision WHERE channel IS NULL OR kind IS NULL")
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.alter_column("kind", existing_type=sa.String(), nullable=False)
        batch_op.alter_column("channel", existing_type=sa.String(), nullable=False)
