"""The one-statement lease claim both outboxes use (reminders and events).

``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent claimers never wait for nor take the same
rows; on SQLite the write transaction (``BEGIN IMMEDIATE``) serialises claimers instead. The due
ids are a CTE, evaluated once: PostgreSQL may re-run a ``LIMIT`` subquery inside ``IN (...)`` per
row and so claim more than ``limit`` rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

Row = TypeVar("Row")


def claim(
    session: Session,
    model: type[Row],
    *,
    waiting: ColumnElement[bool],
    now: datetime,
    limit: int,
    values: dict[str, Any],
) -> list[Row]:
    """Take up to ``limit`` rows of ``model`` that are ``waiting`` and due (``next_attempt_at``
    at or before ``now``), oldest first, setting ``values`` on them only while they are still
    ``waiting``. Commits; returns the claimed rows, freshly loaded, in the same order."""
    order = (model.next_attempt_at, model.id)  # type: ignore[attr-defined]
    due = (
        select(model.id)  # type: ignore[attr-defined]
        .where(waiting, model.next_attempt_at <= now)  # type: ignore[attr-defined]
        .order_by(*order)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    claimed = session.scalars(
        update(model)
        .where(model.id.in_(select(due.c.id)), waiting)  # type: ignore[attr-defined]
        .values(**values)
        .returning(model.id),  # type: ignore[attr-defined]
        execution_options={"synchronize_session": False},
    ).all()
    session.commit()
    if not claimed:
        return []
    return list(
        session.scalars(
            select(model)
            .where(model.id.in_(claimed))  # type: ignore[attr-defined]
            .order_by(*order)
            .execution_options(populate_existing=True)
        )
    )
