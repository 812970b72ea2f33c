"""contact hours: what `at: best` has learned per debtor, segment and channel

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Sends and answered sends at each local hour (24 comma-separated counts): a
    # debtor's own, a segment's, the portfolio's (scope, key), per channel. Ids and
    # counts, nothing personal.
    op.create_table(
        "contact_hour",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("sent", sa.String(), nullable=False),
        sa.Column("answered", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", "channel", name=op.f("pk_contact_hour")),
    )
    # Up to when sends have been counted (one row, written by the planning round).
    op.create_table(
        "best_time_fold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folded_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_best_time_fold")),
    )


def downgrade() -> None:
    op.drop_table("best_time_fold")
    op.drop_table("contact_hour")
