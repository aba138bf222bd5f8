"""The consent ledger: append events, derive the current state per category.

State is per (practice, phone, category). Each change is a new ``ConsentEvent``; the current
state is the newest event by ``occurred_at`` (ties broken by insertion order), so an older event
recorded late, or a replay, never overrides a newer one. No event yet means ``implied`` for
transactional messages (the patient gave the practice the number) and ``none`` for marketing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.domain import Action, Category, ConsentStatus, Source
from gateway.services import metrics
from gateway.store import event_outbox, outbox, send_lock
from gateway.store.models import ConsentEvent, utcnow

T = TypeVar("T")

_STATUS_OF_ACTION = {
    Action.OPT_IN.value: ConsentStatus.OPTED_IN,
    Action.OPT_OUT.value: ConsentStatus.OPTED_OUT,
    Action.OPT_IN_REQUESTED.value: ConsentStatus.PENDING,
}
_NO_EVENT_STATUS = {
    Category.TRANSACTIONAL: ConsentStatus.IMPLIED,
    Category.MARKETING: ConsentStatus.NONE,
}
_MAY_SEND = {
    Category.TRANSACTIONAL: {ConsentStatus.IMPLIED, ConsentStatus.OPTED_IN},
    Category.MARKETING: {ConsentStatus.OPTED_IN},
}


@dataclass(frozen=True)
class ConsentState:
    """The current consent of one category, and the event that set it (None: no event yet)."""

    category: Category
    status: ConsentStatus
    event: ConsentEvent | None = None

    @property
    def since(self) -> datetime | None:
        return self.event.occurred_at if self.event else None

    @property
    def source(self) -> str | None:
        return self.event.source if self.event else None

    @property
    def allows_sending(self) -> bool:
        return self.status in _MAY_SEND[self.category]


def record(
    session: Session,
    *,
    practice: str,
    phone: str,
    category: Category,
    action: Action,
    source: Source,
    occurred_at: datetime | None = None,
    evidence: Mapping[str, Any] | None = None,
    inbound_message_id: int | None = None,
) -> ConsentEvent:
    """Append one event (flushed, not committed: the caller owns the transaction).

    Waits first for any send to ``phone`` under way (see ``gateway.store.send_lock``), so that no
    text starts after this event commits.
    """
    send_lock.exclusive(session, phone)
    tracked = event_outbox.enabled(session, practice)
    before = current(session, practice, phone, (category,))[category] if tracked else None
    now = utcnow()
    event = ConsentEvent(
        practice=practice,
        phone=phone,
        category=category.value,
        action=action.value,
        source=source.value,
        occurred_at=occurred_at or now,
        recorded_at=now,
        evidence=dict(evidence or {}),
        inbound_message_id=inbound_message_id,
    )
    session.add(event)
    session.flush()
    # express consent given: reminders the exemption's caps held back are decided again now
    outbox.reconsider_after_consent(session, practice, phone, category, action, now)
    if before is not None:
        after = current(session, practice, phone, (category,))[category]
        if after.status is not before.status:  # an older event recorded late changes nothing
            event_outbox.emit(
                session, practice, "consent.changed",
                {"practice": practice, "phone": phone, "category": category.value,
                 "status": after.status.value, "previous_status": before.status.value,
                 "source": source.value, "occurred_at": event_outbox.iso(event.occurred_at)},
                occurred_at=event.occurred_at, phone=phone,
            )  # fmt: skip
    metrics.count_on_commit(session, metrics.CONSENT_CHANGES, practice, category.value,
                            action.value, source.value)  # fmt: skip
    return event


#: how long a double opt-in request waits for its YES, unless the practice says otherwise
DEFAULT_PENDING_TTL = timedelta(hours=168)


def current(
    session: Session,
    practice: str,
    phone: str,
    categories: Iterable[Category] = tuple(Category),
    *,
    now: datetime | None = None,
    pending_ttl: timedelta = DEFAULT_PENDING_TTL,
) -> dict[Category, ConsentState]:
    """The current state of each category for one number, in one query.

    A double opt-in request that went unanswered for ``pending_ttl`` has lapsed: it is passed
    over, and the state is what the events before it made it.
    """
    now = now or utcnow()
    wanted = tuple(categories)
    events = session.scalars(
        select(ConsentEvent)
        .where(
            ConsentEvent.practice == practice,
            ConsentEvent.phone == phone,
            ConsentEvent.category.in_([c.value for c in wanted]),
        )
        .order_by(ConsentEvent.occurred_at.desc(), ConsentEvent.id.desc())
    )
    newest = newest_standing(
        ((Category(e.category), e.action, e.occurred_at, e) for e in events),
        len(wanted), now=now, pending_ttl=pending_ttl,
    )  # fmt: skip
    return {category: state_from(category, newest.get(category)) for category in wanted}


def newest_standing(
    events: Iterable[tuple[Category, str, datetime, T]],
    wanted: int,
    *,
    now: datetime,
    pending_ttl: timedelta,
) -> dict[Category, T]:
    """The consent state rule, in one place (pure): from ``(category, action, occurred_at,
    payload)`` rows newest first, the payload of each category's newest event that still
    stands. A double opt-in request unanswered for ``pending_ttl`` has lapsed and is passed
    over. Stops reading once ``wanted`` categories are found."""
    newest: dict[Category, T] = {}
    for category, action, occurred_at, payload in events:
        lapsed = action == Action.OPT_IN_REQUESTED.value and now - occurred_at > pending_ttl
        if not lapsed:
            newest.setdefault(category, payload)
        if len(newest) == wanted:
            break
    return newest


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


def state_from(category: Category, event: ConsentEvent | None) -> ConsentState:
    """The state an event leaves its category in (pure)."""
    return ConsentState(category, status_of(category, event.action if event else None), event)


def status_of(category: Category, action: str | None) -> ConsentStatus:
    """The status an event's action leaves its category in; ``None``: no event yet (pure)."""
    return _NO_EVENT_STATUS[category] if action is None else _STATUS_OF_ACTION[action]


def may_send_in(category: Category, status: ConsentStatus) -> bool:
    return status in _MAY_SEND[category]


def may_send(session: Session, practice: str, phone: str, category: Category) -> bool:
    """Whether consent allows a message of ``category`` to this number right now."""
    return current(session, practice, phone, (category,))[category].allows_sending


def pending_ttl(practice: Any) -> timedelta:
    """The practice's double opt-in expiry."""
    return timedelta(hours=practice.double_opt_in_hours)


def history(session: Session, practice: str, phone: str) -> list[ConsentEvent]:
    """Every event for the number, oldest first (the proof a lawyer asks for)."""
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.practice == practice, ConsentEvent.phone == phone)
            .order_by(ConsentEvent.occurred_at, ConsentEvent.id)
        )
    )
