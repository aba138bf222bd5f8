"""contact policy fields (zone, do-not-text, guardian), review resolution, sent_to

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("do_not_text", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("alternate_phone", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("date_of_birth", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("guardian_phone", sa.String(length=20), nullable=True))

    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reviewed_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("reviewed_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("review_note", sa.Text(), nullable=True))

    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_to", sa.String(length=20), nullable=True))
        batch_op.create_index(
            "ix_outbound_recipient_recent",
            ["practice", "sent_to", "category", "sent_at"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_recipient_recent")
        batch_op.drop_column("sent_to")

    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("review_note")
        batch_op.drop_column("reviewed_by")
        batch_op.drop_column("reviewed_at")

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("guardian_phone")
        batch_op.drop_column("date_of_birth")
        batch_op.drop_column("alternate_phone")
        batch_op.drop_column("do_not_text")
        batch_op.drop_column("time_zone")
