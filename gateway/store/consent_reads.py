"""Reads of the consent ledger that need only the columns deciding a state, not the events'
encrypted evidence (the inbound webhook's reply depends on them)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Result, bindparam, select
from sqlalchemy.orm import Session

from gateway.core.domain import Category
from gateway.store.models import ConsentEvent

_EVENTS = ConsentEvent.__table__
_LATEST_ACTIONS = (
    select(_EVENTS.c.category, _EVENTS.c.action, _EVENTS.c.occurred_at)
    .where(
        _EVENTS.c.practice == bindparam("practice"),
        _EVENTS.c.phone == bindparam("phone"),
        _EVENTS.c.category.in_(bindparam("categories", expanding=True)),
    )
    .order_by(_EVENTS.c.occurred_at.desc(), _EVENTS.c.id.desc())
)


def latest_actions(
    session: Session, practice: str, phone: str, categories: Iterable[Category]
) -> Result[tuple[str, str, datetime]]:
    """``(category, action, occurred_at)`` of every event of ``categories`` for the number,
    newest first (``occurred_at``, then insertion order: the ledger's order). One SELECT, no
    lock, run at once; rows are fetched as the caller iterates, so it may stop early."""
    return session.execute(_LATEST_ACTIONS, {
        "practice": practice, "phone": phone, "categories": [c.value for c in categories]
    })  # fmt: skip
