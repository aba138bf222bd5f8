"""appointment confirmations (the reminder's response) and the event outbox

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("response", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column(
                "responded_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True
            )
        )
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("practice", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column(
            "occurred_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column(
            "last_attempt_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column(
            "delivered_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "created_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("webhook_id"),
    )
    op.create_index(
        "ix_event_deliveries_due", "event_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_event_deliveries_practice", "event_deliveries", ["practice", "status", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_event_deliveries_practice", table_name="event_deliveries")
    op.drop_index("ix_event_deliveries_due", table_name="event_deliveries")
    op.drop_table("event_deliveries")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("responded_at")
        batch.drop_column("response")
