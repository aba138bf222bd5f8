"""inbound messages and consent ledger

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import gateway.store.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column(
            "created_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("practice", "phone", name="uq_contacts_practice_phone"),
    )
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_sid", sa.String(length=64), nullable=False),
        sa.Column("practice", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("num_media", sa.Integer(), nullable=False),
        sa.Column(
            "received_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("intent", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("keyword", sa.String(length=32), nullable=True),
        sa.Column("opt_out_type", sa.String(length=16), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("review_status", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_sid"),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_practice_phone", ["practice", "phone"], unique=False)
        batch_op.create_index(
            "ix_inbound_review_open", ["practice", "review_status", "received_at"], unique=False
        )

    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column(
            "occurred_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "recorded_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("inbound_message_id", sa.Integer(), nullable=True),
        sa.Column(
            "evidence", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["inbound_message_id"],
            ["inbound_messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_current",
            ["practice", "phone", "category", "occurred_at", "id"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_current")

    op.drop_table("consent_events")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_review_open")
        batch_op.drop_index("ix_inbound_practice_phone")

    op.drop_table("inbound_messages")
    op.drop_table("contacts")
