"""outbound webhooks: the delivery outbox and the emitter's cursors

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 09:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per (subscription, event): the unique key makes queuing an event twice a
    # no-op; the dispatcher posts them in id order per (subscription, order_key).
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.String(), nullable=False),
        sa.Column("event_key", sa.String(), nullable=False),
        sa.Column("webhook_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("order_key", sa.String(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
        sa.UniqueConstraint(
            "subscription_id",
            "event_key",
            name=op.f("uq_webhook_delivery_subscription_id_event_key"),
        ),
    )
    op.create_index(
        op.f("ix_webhook_delivery_state_next_attempt_at"),
        "webhook_delivery",
        ["state", "next_attempt_at"],
    )
    op.create_index(
        op.f("ix_webhook_delivery_subscription_id_order_key_id"),
        "webhook_delivery",
        ["subscription_id", "order_key", "id"],
    )
    op.create_index(op.f("ix_webhook_delivery_account_id"), "webhook_delivery", ["account_id"])
    # How far the emitter has read each source table.
    op.create_table(
        "webhook_cursor",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("start_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_webhook_cursor")),
    )
    # Each source starts at its end: a database upgraded with years of decisions does
    # not post them when a CRM subscribes (a new database starts at 0, its first row).
    for source, table in _SOURCES:
        op.execute(
            sa.text(
                f"INSERT INTO webhook_cursor (source, last_id, start_id, updated_at) "
                f"SELECT '{source}', COALESCE(MAX(id), 0), COALESCE(MAX(id), 0), "
                f"CURRENT_TIMESTAMP FROM {table}"
            )
        )


_SOURCES = (
    ("decision", "decision"),
    ("delivery", "delivery_event"),
    ("click", "account_event"),
    ("inbound", "account_event"),
    ("opt_out", "opt_out"),
    ("promise", "promise"),
    ("payment", "payment"),
)


def downgrade() -> None:
    op.drop_table("webhook_cursor")
    op.drop_index(op.f("ix_webhook_delivery_account_id"), table_name="webhook_delivery")
    op.drop_index(
        op.f("ix_webhook_delivery_subscription_id_order_key_id"), table_name="webhook_delivery"
    )
    op.drop_index(op.f("ix_webhook_delivery_state_next_attempt_at"), table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
