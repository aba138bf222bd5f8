"""outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import gateway.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column(
            "params", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "send_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "expires_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column(
            "next_attempt_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column(
            "lease_expires_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "send_started_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("sender", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("provider_sid", sa.String(length=64), nullable=True),
        sa.Column("provider_status", sa.String(length=32), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "sent_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "completed_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("practice", "external_id", name="uq_outbound_practice_external_id"),
        sa.UniqueConstraint("provider_sid"),
    )
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_outbound_practice_phone", ["practice", "phone", "sent_at"], unique=False
        )

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unreachable", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("unreachable_code", sa.Integer(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("unreachable_code")
        batch_op.drop_column("unreachable")

    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_practice_phone")
        batch_op.drop_index("ix_outbound_due")

    op.drop_table("outbound_messages")
