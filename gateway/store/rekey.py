"""Re-encryption of the stored columns with the current key (``flask --app app rotate-keys``).

Re-encryption changes no content: each value decrypts to exactly the text it held. That is why
the rows are rewritten with Core UPDATE statements on the tables, not through the ORM: the
consent ledger is append-only and the ORM refuses to UPDATE a consent event, but rewriting the
ciphertext of its evidence is no edit of the record (nor does it touch any other column, such as
``updated_at``).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import crypto


class NotMigrated(Exception):
    """A table's encrypted column still has its pre-encryption type (JSON): the schema is older
    than the encryption; ``table`` names it."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.table = table


def encrypted_columns() -> dict[str, tuple[str, ...]]:
    """The encrypted columns of each table (table name -> column names), from the models."""
    from gateway.store.models import Base, EncryptedJSON, EncryptedText

    found: dict[str, tuple[str, ...]] = {}
    for table in Base.metadata.sorted_tables:
        names = tuple(
            c.name for c in table.columns if isinstance(c.type, EncryptedText | EncryptedJSON)
        )
        if names:
            found[table.name] = names
    return found


def rotate_table(
    engine: sa.Engine, name: str, columns: tuple[str, ...], batch: int
) -> tuple[int, int]:
    """Rewrite one table's encrypted values with the current key; returns (rows rewritten,
    plaintext values encrypted).

    Runs while the gateway runs: rows are read and rewritten in batches of ``batch`` by id, one
    transaction each, locked for that transaction (FOR UPDATE on PostgreSQL; SQLite has a single
    writer), so no concurrent change is lost. Raises :class:`NotMigrated` (that batch rolled
    back) when a value is not text, and ``crypto.KeyMissing`` when one cannot be decrypted.
    """
    # Lightweight table: the columns as plain text, so the stored form is read and written as is.
    table = sa.table(name, sa.column("id", sa.Integer), *(sa.column(c, sa.Text) for c in columns))
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values({c: sa.bindparam(f"new_{c}") for c in columns})
    )
    rows_done = plaintext = 0
    last_id = 0
    while True:
        with engine.begin() as connection:
            rows = connection.execute(
                sa.select(table.c.id, *(table.c[c] for c in columns))
                .where(table.c.id > last_id)
                .order_by(table.c.id)
                .limit(batch)
                .with_for_update()
            ).all()
            if not rows:
                break
            values = []
            for row in rows:
                stored = dict(zip(columns, row[1:], strict=True))
                plaintext += sum(1 for v in stored.values() if _is_plaintext(v, name))
                new = {
                    f"new_{c}": None if v is None else crypto.rotate(v) for c, v in stored.items()
                }
                values.append({"row_id": row[0], **new})
            connection.execute(statement, values)
        rows_done += len(rows)
        last_id = rows[-1][0]
    return rows_done, plaintext


def _is_plaintext(value: object, table: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, str):  # a JSON/JSONB column: the schema predates the encryption
        raise NotMigrated(table)
    return not crypto.is_encrypted(value)
