"""e-bill: the balance's breakdown, and where a promise or a plan came from

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 10:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONEY = sa.Numeric(18, 2, asdecimal=True)


def upgrade() -> None:
    # Optional import columns: what the balance is made of, shown on the e-bill page.
    with op.batch_alter_table("account") as batch:
        batch.add_column(sa.Column("principal", _MONEY, nullable=True))
        batch.add_column(sa.Column("interest", _MONEY, nullable=True))
        batch.add_column(sa.Column("fees", _MONEY, nullable=True))
    # Where a promise or a plan was made: `api`, or `self_service` (the e-bill page);
    # NULL for those recorded before, which the report counts with the API's.
    with op.batch_alter_table("promise") as batch:
        batch.add_column(sa.Column("source", sa.String(), nullable=True))
    with op.batch_alter_table("instalment_plan") as batch:
        batch.add_column(sa.Column("source", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instalment_plan") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("promise") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("fees")
        batch.drop_column("interest")
        batch.drop_column("principal")
