"""settlements: what a promise waives when it is a settlement

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 12:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A settlement is a promise to pay part of the balance by a date, the rest waived
    # when it is kept: the waived amount, as agreed; NULL for a plain promise.
    with op.batch_alter_table("promise") as batch:
        batch.add_column(sa.Column("waived", sa.Numeric(18, 2, asdecimal=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("promise") as batch:
        batch.drop_column("waived")
