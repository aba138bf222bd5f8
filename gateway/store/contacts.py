"""Contacts: one row per (practice, phone), created on first sight, safe under concurrency."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Executable, Insert, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.store.models import Contact, utcnow

_CONTACTS = Contact.__table__


def upsert(session: Session, practice: str, phone: str, **values: Any) -> None:
    """Create the contact if it is new, else update ``values`` on it (one atomic statement)."""
    now = utcnow()
    statement = _upsert_statement(session.get_bind().dialect.name, tuple(sorted(values)))
    session.execute(
        statement, {"practice": practice, "phone": phone, "created_at": now, "updated_at": now,
                    **values},
    )  # fmt: skip


@cache
def _upsert_statement(dialect: str, names: tuple[str, ...]) -> Executable:
    """``INSERT ... ON CONFLICT (practice, phone) DO UPDATE SET updated_at, <names>`` taking its
    values as parameters; built once per dialect and set of columns (SQLAlchemy then reuses its
    compiled form)."""
    _check(names)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_CONTACTS)
    return statement.on_conflict_do_update(
        index_elements=[_CONTACTS.c.practice, _CONTACTS.c.phone],
        # ``excluded`` holds the row the INSERT proposed: the same values
        set_={name: statement.excluded[name] for name in ("updated_at", *names)},
    )


def upsert_values(practice: str, phone: str, **values: Any) -> dict[str, Any]:
    """The parameters of :func:`upsert_where`'s statement for this contact, prefixed."""
    now = utcnow()
    row = {"practice": practice, "phone": phone, "created_at": now, "updated_at": now, **values}
    return {_PREFIX + name: value for name, value in row.items()}


def upsert_where(condition: ColumnElement[bool], names: tuple[str, ...]) -> Insert:
    """PostgreSQL: :func:`upsert` as ``INSERT ... SELECT ... WHERE condition ON CONFLICT ...``,
    to run inside another statement (a data-modifying CTE) only when ``condition`` holds. Its
    parameters are :func:`upsert_values`; ``names`` are the columns set besides the key."""
    _check(names)
    columns = ("practice", "phone", "created_at", "updated_at", *names)
    row = select(
        *(bindparam(_PREFIX + name, type_=_CONTACTS.c[name].type) for name in columns)
    ).where(condition)
    # the columns not given take their server defaults (``do_not_text``: false), as in upsert
    statement = postgresql.insert(_CONTACTS).from_select(columns, row, include_defaults=False)
    return statement.on_conflict_do_update(
        index_elements=[_CONTACTS.c.practice, _CONTACTS.c.phone],
        set_={name: statement.excluded[name] for name in ("updated_at", *names)},
    )


_PREFIX = "contact_"


def _check(names: tuple[str, ...]) -> None:
    unknown = [name for name in names if name not in _CONTACTS.c]
    if unknown:
        raise TypeError(f"contacts have no column {unknown[0]!r}")


def get(session: Session, practice: str, phone: str) -> Contact | None:
    return session.scalar(
        select(Contact).where(Contact.practice == practice, Contact.phone == phone)
    )
