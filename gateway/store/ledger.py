"""The consent ledger: consent events appended, never edited, and read back newest first, the order
the consent rules (``gateway.core.consent_rules``) read them in.

Every statement on ``consent_events`` that decides or shows consent is here; retention and erasure
delete events through their own modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from gateway.core.domain import Action, Category, Source
from gateway.store.models import ConsentEvent

__all__ = ["append", "ever_opted_in", "history", "newest_actions", "newest_first"]


def append(
    session: Session,
    *,
    practice: str,
    phone: str,
    category: Category,
    action: Action,
    source: Source,
    occurred_at: datetime,
    recorded_at: datetime,
    evidence: Mapping[str, Any],
    inbound_message_id: int | None = None,
) -> ConsentEvent:
    """Add one event and flush it (its ``id`` is set; the caller owns the transaction).

    Written by one ``INSERT ... RETURNING id`` (the ORM's unit of work costs several times as
    much for one row); what the session had pending is flushed first, as before. The event
    given back is in the session as if it had been read back: nothing is left to write.
    """
    session.flush()
    row = {
        "practice": practice,
        "phone": phone,
        "category": category,
        "action": action,
        "source": source,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "evidence": dict(evidence),
        "inbound_message_id": inbound_message_id,
    }
    event = ConsentEvent(id=session.execute(_APPEND, row).scalar_one(), **row)
    make_transient_to_detached(event)
    session.add(event)
    return event


def newest_first(
    session: Session, practice: str, phone: str, categories: Iterable[Category]
) -> Iterable[ConsentEvent]:
    """The number's events in ``categories``, newest first (``occurred_at``, then ``id``),
    fetched as they are read."""
    return session.scalars(
        select(ConsentEvent)
        .where(
            ConsentEvent.practice == practice,
            ConsentEvent.phone == phone,
            ConsentEvent.category.in_([c.value for c in categories]),
        )
        .order_by(ConsentEvent.occurred_at.desc(), ConsentEvent.id.desc())
    )


def newest_actions(
    session: Session, practice: str, phone: str, categories: Iterable[Category]
) -> Iterable[Row[Any]]:
    """As ``newest_first``, but rows of only ``category``, ``action`` and ``occurred_at``: what
    decides the state, without the events' encrypted evidence."""
    return session.execute(_NEWEST_ACTIONS, {
        "practice": practice, "phone": phone, "categories": [c.value for c in categories]
    })  # fmt: skip


_EVENTS = ConsentEvent.__table__
_APPEND = insert(_EVENTS).returning(_EVENTS.c.id)
_NEWEST_ACTIONS = (
    select(_EVENTS.c.category, _EVENTS.c.action, _EVENTS.c.occurred_at)
    .where(
        _EVENTS.c.practice == bindparam("practice"),
        _EVENTS.c.phone == bindparam("phone"),
        _EVENTS.c.category.in_(bindparam("categories", expanding=True)),
    )
    .order_by(_EVENTS.c.occurred_at.desc(), _EVENTS.c.id.desc())
)


def ever_opted_in(session: Session, practice: str, phone: str, category: Category) -> bool:
    """Whether the number ever gave express consent (an ``opt_in`` event) to ``category``."""
    return (
        session.scalar(
            select(ConsentEvent.id)
            .where(
                ConsentEvent.practice == practice,
                ConsentEvent.phone == phone,
                ConsentEvent.category == category.value,
                ConsentEvent.action == Action.OPT_IN.value,
            )
            .limit(1)
        )
        is not None
    )


def history(session: Session, practice: str, phone: str) -> list[ConsentEvent]:
    """Every event for the number, oldest first (the proof a lawyer asks for)."""
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.practice == practice, ConsentEvent.phone == phone)
            .order_by(ConsentEvent.occurred_at, ConsentEvent.id)
        )
    )
