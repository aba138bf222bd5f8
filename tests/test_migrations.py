"""The Alembic migrations build exactly the schema the models describe, and undo it."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gateway.store import migrate
from gateway.store.db import make_engine
from gateway.store.models import Base


def test_migrated_schema_matches_the_models(database_url):
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_downgrade_to_base_and_back(database_url):
    engine = make_engine(database_url)
    try:
        migrate.downgrade(database_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        migrate.upgrade(database_url)
    assert {"contacts", "inbound_messages", "consent_events"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
