"""console: failed sign-ins per client address, shared by every web worker

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sign_in_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "failed_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("console_sign_in_failures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sign_in_failures_address", ["address_hash", "failed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("console_sign_in_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_sign_in_failures_address")
    op.drop_table("console_sign_in_failures")
