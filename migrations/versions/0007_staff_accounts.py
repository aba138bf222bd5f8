"""staff console: staff accounts, the practices each sees, signed-in sessions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("failed_sign_ins", sa.Integer(), nullable=False),
        sa.Column(
            "locked_until", gateway.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "last_sign_in_at", gateway.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "created_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "staff_account_practices",
        sa.Column("staff_account_id", sa.Integer(), nullable=False),
        sa.Column("practice", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["staff_account_id"], ["staff_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("staff_account_id", "practice"),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_account_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "last_seen_at", gateway.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(["staff_account_id"], ["staff_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_staff_sessions_account", ["staff_account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_sessions_account")
    op.drop_table("staff_sessions")
    op.drop_table("staff_account_practices")
    op.drop_table("staff_accounts")
