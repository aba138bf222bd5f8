"""Contacts: one row per (practice, phone), created on first sight, safe under concurrency."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.models import Contact, utcnow


def upsert(session: Session, practice: str, phone: str, **values: Any) -> None:
    """Create the contact if it is new, else update ``values`` on it (one atomic statement)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(Contact).values(
        practice=practice, phone=phone, created_at=now, updated_at=now, **values
    )
    statement = statement.on_conflict_do_update(
        index_elements=[Contact.practice, Contact.phone],
        set_={"updated_at": now, **values},
    )
    session.execute(statement)


def get(session: Session, practice: str, phone: str) -> Contact | None:
    return session.scalar(
        select(Contact).where(Contact.practice == practice, Contact.phone == phone)
    )
