"""message bodies, review notes, reminder params and consent evidence encrypted at rest

The encrypted columns hold text ("enc:v1:" + a Fernet token, see ``gateway.store.crypto``). The
bodies and the review note were text already; ``outbound_messages.params`` and
``consent_events.evidence`` change from JSON (SQLite, table rebuilt) / JSONB (PostgreSQL,
``ALTER ... TYPE text USING col::text``) to text. Existing rows keep their content: the app reads
legacy plaintext as it is, and ``flask --app app rotate-keys`` encrypts it (this migration has no
key and encrypts nothing).

The downgrade decrypts every encrypted value in place with the configured keys, then turns the two
columns back into JSON/JSONB. Run it through ``flask --app app db downgrade 0004`` (which loads
GATEWAY_ENCRYPTION_KEYS): when an encrypted row exists and no configured key decrypts it, the
downgrade stops with ``crypto.KeyMissing`` (on PostgreSQL nothing is changed then).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.store import crypto

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

#: every encrypted column, by table
ENCRYPTED_COLUMNS = {
    "inbound_messages": ("body", "review_note"),
    "outbound_messages": ("body", "params"),
    "consent_events": ("evidence",),
}
#: the encrypted columns that were JSON documents before
JSON_COLUMNS = (("outbound_messages", "params"), ("consent_events", "evidence"))
BATCH = 500


def upgrade() -> None:
    for table, column in JSON_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=JSON_DOCUMENT,
                type_=sa.Text(),
                existing_nullable=False,
                postgresql_using=f"{column}::text",
            )


def downgrade() -> None:
    _decrypt_in_place(op.get_bind())
    for table, column in JSON_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.Text(),
                type_=JSON_DOCUMENT,
                existing_nullable=False,
                postgresql_using=f"{column}::jsonb",
            )


def _decrypt_in_place(connection: sa.Connection) -> None:
    """Replace every encrypted value by its plaintext (JSON text for the JSON columns)."""
    for name, columns in ENCRYPTED_COLUMNS.items():
        for column in columns:
            table = sa.table(name, sa.column("id", sa.Integer), sa.column(column, sa.Text))
            value = table.c[column]
            statement = (
                sa.update(table)
                .where(table.c.id == sa.bindparam("row_id"))
                .values({column: sa.bindparam("plaintext")})
            )
            last_id = 0
            while True:
                rows = connection.execute(
                    sa.select(table.c.id, value)
                    .where(table.c.id > last_id, value.like(crypto.PREFIX + "%"))
                    .order_by(table.c.id)
                    .limit(BATCH)
                ).all()
                if not rows:
                    break
                try:
                    plain = [{"row_id": i, "plaintext": crypto.decrypt(v)} for i, v in rows]
                except crypto.KeyMissing as exc:
                    raise crypto.KeyMissing(
                        f"downgrade from 0005 decrypts {name}.{column}: {exc} (run it through "
                        "`flask --app app db downgrade 0004` with every key in use)"
                    ) from None
                connection.execute(statement, plain)
                last_id = rows[-1][0]
