"""strategy columns: segment, experiment and variant on occurrences and decisions;
product and risk score on accounts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STRATEGY = ("segment", "experiment", "variant")


def upgrade() -> None:
    # The segment an occurrence was planned under and the experiment arm it came from,
    # copied onto each of its decisions (NULL where none applies, and on older rows).
    for table in ("occurrence", "decision"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in _STRATEGY:
                batch_op.add_column(sa.Column(name, sa.String(), nullable=True))
    # Two optional import columns that segment rules read.
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("product", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("risk_score", sa.Numeric(12, 4), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("risk_score")
        batch_op.drop_column("product")
    for table in ("decision", "occurrence"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in reversed(_STRATEGY):
                batch_op.drop_column(name)
