"""planning partitions: an index on the partition of each account (PostgreSQL)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The partition of an account: a hash of its debtor id in 64 parts. Workers on
# PostgreSQL plan one partition at a time each (``dispatch/postgres.py``, whose
# PARTITION_OF_ACCOUNT is this text): the index lets a worker page through its
# partition's accounts by id. SQLite has one worker, which plans every account.
PARTITION = "((hashtext(debtor_id) & 2147483647) % 64)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX ix_account_plan_partition ON account ({PARTITION}, account_id)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_account_plan_partition")
