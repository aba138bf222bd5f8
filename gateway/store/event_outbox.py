"""The event outbox: events for the practices' scheduling systems, written in the caller's
transaction (so an event exists exactly when its change committed), claimed and settled by the
scheduler process (``gateway.services.event_delivery``).

Only practices with ``[practices.<slug>.events]`` get events: ``enable`` tells the outbox which,
per database engine, at start-up; every session on that engine (requests, dispatch, CLI) sees it.

Attempts follow the Standard Webhooks schedule: at once, then 5 s, 5 min, 30 min, 2 h, 5 h and
10 h after the attempt before; after the seventh failure the event is ``failed`` (a manual retry
gives it one more attempt). A claim is a lease: ``next_attempt_at`` moves ``lease`` ahead and
``lease_owner`` is set, so a process that dies mid-attempt leaves the event due again (at least
once); results are recorded only by the lease's owner.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from gateway.core.domain import EventDeliveryStatus
from gateway.store import leases
from gateway.store.models import EventDelivery, OutboundMessage, utcnow

PENDING, DELIVERED, FAILED = (
    EventDeliveryStatus.PENDING.value, EventDeliveryStatus.DELIVERED.value,
    EventDeliveryStatus.FAILED.value,
)  # fmt: skip
STATUSES = (PENDING, DELIVERED, FAILED)
TYPES = (
    "reminder.sent", "reminder.delivered", "reminder.failed", "reminder.skipped",
    "appointment.confirmed", "appointment.reschedule_requested", "consent.changed",
)  # fmt: skip
#: the wait after each failed attempt (Standard Webhooks); one attempt more than waits
RETRY_DELAYS = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10),
)  # fmt: skip
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
#: delivered and failed events are deleted by the retention job this long after they were written
KEEP_SETTLED = timedelta(days=30)
SETTLED = (DELIVERED, FAILED)
MAX_ERROR_CHARS = 200

_ENABLED: weakref.WeakKeyDictionary[Engine, frozenset[str]] = weakref.WeakKeyDictionary()


def enable(engine: Engine, practices: Iterable[str]) -> None:
    """The practices whose changes become events, for every session on ``engine``."""
    _ENABLED[engine] = frozenset(practices)


def enabled(session: Session, practice: str) -> bool:
    bind = session.get_bind()
    engine = getattr(bind, "engine", bind)
    return practice in _ENABLED.get(engine, frozenset())


def new_webhook_id() -> str:
    return "msg_" + secrets.token_hex(16)


def emit(
    session: Session,
    practice: str,
    type: str,
    data: dict[str, Any],
    *,
    occurred_at: datetime | None = None,
    phone: str | None = None,
) -> EventDelivery | None:
    """Add one event in the caller's transaction (not committed); None when the practice has no
    events configured."""
    if type not in TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if not enabled(session, practice):
        return None
    now = utcnow()
    event = EventDelivery(
        webhook_id=new_webhook_id(), practice=practice, type=type,
        occurred_at=occurred_at or now, data=data, phone=phone, status=PENDING, attempts=0,
        next_attempt_at=now, created_at=now,
    )  # fmt: skip
    session.add(event)
    return event


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


#: a reminder's new status -> its event
_REMINDER_EVENTS = {
    "sent": "reminder.sent",
    "delivered": "reminder.delivered",
    "undelivered": "reminder.failed",
    "failed": "reminder.failed",
    "skipped": "reminder.skipped",
}


def reminder_moved(
    session: Session, message: OutboundMessage, status: Any, at: datetime | None = None
) -> EventDelivery | None:
    """The event of a reminder that has just moved to ``status`` in the caller's transaction
    (none for statuses without one: scheduled, sending, uncertain, cancelled; nothing read for
    a practice without events)."""
    status = getattr(status, "value", status)
    if status not in _REMINDER_EVENTS or not enabled(session, message.practice):
        return None
    return emit_reminder(session, message.id, _REMINDER_EVENTS[status], occurred_at=at)


def emit_reminder(
    session: Session,
    message_id: int,
    type: str,
    *,
    occurred_at: datetime | None = None,
    **extra: Any,
) -> EventDelivery | None:
    """A ``reminder.*`` or ``appointment.*`` event for the outbox message ``message_id`` (as it
    now stands in the transaction). Messages the gateway queued itself (no caller's id) have no
    events."""
    m = OutboundMessage
    row = session.execute(
        select(
            m.practice, m.external_id, m.phone, m.status, m.reason, m.error_code, m.sent_at,
            m.completed_at, m.provider_sid,
        ).where(m.id == message_id)
    ).first()  # fmt: skip
    if row is None or row.external_id is None or not enabled(session, row.practice):
        return None
    data: dict[str, Any] = {"reminder_id": row.external_id, "practice": row.practice,
                            "to": row.phone, "status": row.status}  # fmt: skip
    if type == "reminder.sent":
        data.update(sent_at=iso(row.sent_at), provider_sid=row.provider_sid)
    elif type == "reminder.delivered":
        data.update(delivered_at=iso(row.completed_at), provider_sid=row.provider_sid)
    elif type == "reminder.failed":
        data.update(error_code=row.error_code, reason=row.reason, provider_sid=row.provider_sid)
    elif type == "reminder.skipped":
        data.update(reason=row.reason)
    data.update(extra)
    return emit(session, row.practice, type, data, occurred_at=occurred_at, phone=row.phone)


# --- delivery --------------------------------------------------------------------------------


def claim_due(
    session: Session, *, now: datetime, owner: str, lease: timedelta, limit: int
) -> list[EventDelivery]:
    """Take up to ``limit`` due events for ``owner`` until ``now + lease`` (their next attempt
    moves to the lease's end; ``gateway.store.leases.claim``). Commits."""
    return leases.claim(
        session, EventDelivery, waiting=EventDelivery.status == PENDING, now=now, limit=limit,
        values={"next_attempt_at": now + lease, "lease_owner": owner},
    )


def _settle(session: Session, event_id: int, owner: str, **values: Any) -> bool:
    result = session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.id == event_id,
            EventDelivery.status == PENDING,
            EventDelivery.lease_owner == owner,
        )
        .values(lease_owner=None, **values),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1


def delivered(
    session: Session, event: EventDelivery, owner: str, now: datetime, status_code: int
) -> bool:
    """Record a 2xx; the practice's other events waiting to be retried are brought forward (the
    receiver is back). Commits."""
    done = _settle(
        session, event.id, owner, status=DELIVERED, attempts=event.attempts + 1,
        last_attempt_at=now, last_status_code=status_code, last_error=None, delivered_at=now,
    )  # fmt: skip
    if done:
        session.execute(
            update(EventDelivery)
            .where(
                EventDelivery.practice == event.practice,
                EventDelivery.status == PENDING,
                EventDelivery.lease_owner.is_(None),
                EventDelivery.attempts > 0,
                EventDelivery.next_attempt_at > now,
            )
            .values(next_attempt_at=now),
            execution_options={"synchronize_session": False},
        )
    session.commit()
    return done


def attempt_failed(
    session: Session,
    event: EventDelivery,
    owner: str,
    now: datetime,
    status_code: int | None,
    error: str,
) -> str | None:
    """Record a failed attempt: the next one per the schedule, or ``failed`` when it is spent.
    Returns the new status (None: the lease was lost). Commits."""
    attempts = event.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts, "last_attempt_at": now, "last_status_code": status_code,
        "last_error": error[:MAX_ERROR_CHARS],
    }  # fmt: skip
    if attempts >= MAX_ATTEMPTS:
        values["status"] = FAILED
    else:
        values["next_attempt_at"] = now + RETRY_DELAYS[attempts - 1]
    done = _settle(session, event.id, owner, **values)
    session.commit()
    return values.get("status", PENDING) if done else None


def retry(session: Session, practice: str, webhook_id: str, now: datetime) -> EventDelivery:
    """Attempt a failed or pending event at once. Commits.

    Raises LookupError (no such event in the practice) or ValueError (already delivered).
    """
    event = get(session, practice, webhook_id)
    if event is None:
        raise LookupError(webhook_id)
    if event.status == DELIVERED:
        raise ValueError("already delivered")
    session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.id == event.id,
            # not one being attempted right now: its result is coming
            (EventDelivery.status == FAILED) | (EventDelivery.lease_owner.is_(None)),
        )
        .values(status=PENDING, next_attempt_at=now, lease_owner=None),
        execution_options={"synchronize_session": False},
    )
    session.commit()
    session.refresh(event)
    return event


def get(session: Session, practice: str, webhook_id: str) -> EventDelivery | None:
    return session.scalar(
        select(EventDelivery).where(
            EventDelivery.practice == practice, EventDelivery.webhook_id == webhook_id
        )
    )


def page(
    session: Session, practice: str, *, status: str | None, limit: int, before: int | None
) -> list[EventDelivery]:
    """The practice's events, newest first."""
    query = select(EventDelivery).where(EventDelivery.practice == practice)
    if status is not None:
        query = query.where(EventDelivery.status == status)
    if before is not None:
        query = query.where(EventDelivery.id < before)
    return list(session.scalars(query.order_by(EventDelivery.id.desc()).limit(limit)))


def failing(session: Session, practice: str, limit: int = 20) -> tuple[int, list[EventDelivery]]:
    """Events that failed for good or whose last attempt failed: how many, and the newest."""
    condition = (
        EventDelivery.practice == practice,
        (EventDelivery.status == FAILED)
        | ((EventDelivery.status == PENDING) & (EventDelivery.attempts > 0)),
    )
    count = session.scalar(select(func.count()).select_from(EventDelivery).where(*condition))
    rows = session.scalars(
        select(EventDelivery).where(*condition).order_by(EventDelivery.id.desc()).limit(limit)
    )
    return int(count or 0), list(rows)
