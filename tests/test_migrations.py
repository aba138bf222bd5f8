"""The Alembic migrations build exactly the schema the models describe, and undo it."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from gateway.core.domain import Action, Category, EventDeliveryStatus, Source
from gateway.store import migrate
from gateway.store.db import make_engine
from gateway.store.models import Base, ConsentEvent, EventDelivery


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


def test_enum_columns_store_and_return_the_plain_strings(session):
    """Status and category columns are typed by the core enums but hold the same strings as
    before; rows give members back, and an assigned string becomes its member at once."""
    now = datetime.now(UTC)
    event = ConsentEvent(
        practice="enum-check", phone="+15550100999", category="marketing",
        action=Action.OPT_IN_REQUESTED, source=Source.WEB_FORM, occurred_at=now,
    )  # fmt: skip
    delivery = EventDelivery(
        webhook_id="msg_enum_check", practice="enum-check", type="consent.changed",
        occurred_at=now, next_attempt_at=now,
    )  # fmt: skip
    assert event.category is Category.MARKETING
    session.add_all([event, delivery])
    session.commit()
    raw = session.execute(
        text("SELECT category, action, source FROM consent_events WHERE id = :id"),
        {"id": event.id},
    ).one()
    assert tuple(raw) == ("marketing", "opt_in_requested", "web_form")
    assert all(type(value) is str for value in raw)
    status = session.execute(
        text("SELECT status FROM event_deliveries WHERE id = :id"), {"id": delivery.id}
    ).scalar_one()
    assert (type(status), status) == (str, "pending")
    session.expunge_all()
    read = session.scalars(select(ConsentEvent).where(ConsentEvent.id == event.id)).one()
    assert (read.category, read.action, read.source) == (
        Category.MARKETING, Action.OPT_IN_REQUESTED, Source.WEB_FORM
    )  # fmt: skip
    assert type(read.action) is Action
    assert session.get(EventDelivery, delivery.id).status is EventDeliveryStatus.PENDING
