"""account phone zones: the phone's time zones as found at import

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 00:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing accounts get NULL: their zones are read from the number, as before, until
    # an import changes their phone.
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_zones", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("phone_zones")
