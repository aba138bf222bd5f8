"""inbound messages: the keyword rule that classified each one

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


# Plain ALTER TABLE (SQLite 3.35+ drops a column in place): a batch copy of inbound_messages
# would drop the table that consent events refer to.


def upgrade() -> None:
    op.add_column("inbound_messages", sa.Column("rule", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("inbound_messages", "rule")
