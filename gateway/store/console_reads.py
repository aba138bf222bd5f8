"""What the staff console reads, one practice at a time: a number's recent texts, review items,
the audit log, and the dashboard's counts (``gateway.web.console.queries`` and ``.stats`` shape
them into pages). Read-only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, distinct, func, or_, select
from sqlalchemy.orm import Session

from gateway.core.domain import Action, OutboxStatus, ReviewStatus
from gateway.store.models import (
    AuditEvent,
    ConsentEvent,
    InboundMessage,
    OutboundMessage,
    StaffAccount,
)

# -- the patient page ---------------------------------------------------------------------------


def recent_outbound(
    session: Session, practice: str, phone: str, limit: int
) -> list[OutboundMessage]:
    """The ``limit`` newest outbound messages for the number or sent to it (as a guardian or a
    designated number), newest first (by creation, then id)."""
    return list(session.scalars(
        select(OutboundMessage)
        .where(
            OutboundMessage.practice == practice,
            or_(OutboundMessage.phone == phone, OutboundMessage.sent_to == phone),
        )
        .order_by(OutboundMessage.created_at.desc(), OutboundMessage.id.desc())
        .limit(limit)
    ))  # fmt: skip


def recent_inbound(session: Session, practice: str, phone: str, limit: int) -> list[InboundMessage]:
    """The ``limit`` newest texts the number sent the practice, newest first (by receipt, then
    id)."""
    return list(session.scalars(
        select(InboundMessage)
        .where(InboundMessage.practice == practice, InboundMessage.phone == phone)
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(limit)
    ))  # fmt: skip


# -- review and audit -------------------------------------------------------------------------


def review_item(session: Session, practice: str, inbound_id: int) -> InboundMessage | None:
    """A message that needed review (open or resolved) in the practice, or None."""
    return session.scalar(
        select(InboundMessage).where(
            InboundMessage.id == inbound_id,
            InboundMessage.practice == practice,
            InboundMessage.review_status.is_not(None),
        )
    )


def audit_events(
    session: Session, practice: str, *, before_id: int | None, limit: int
) -> list[AuditEvent]:
    """Up to ``limit`` of the practice's audit events, newest first (by id), only those with an
    id below ``before_id`` when it is given."""
    query = select(AuditEvent).where(AuditEvent.practice == practice)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))


def staff_emails(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """Staff account id -> e-mail, for the ids that name an account (none queried when empty)."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(StaffAccount.id, StaffAccount.email).where(StaffAccount.id.in_(wanted))
    )
    return {account_id: email for account_id, email in rows}


# -- the dashboard ------------------------------------------------------------------------------
#
# Counting is done by the database in hourly buckets (UTC), which the console then adds up into
# local days: both databases group the same way, and a day boundary in any whole-hour time zone,
# across DST changes too, falls between two buckets.

#: (the start of a UTC hour, aware; how many)
HourCounts = list[tuple[datetime, int]]


def sent_per_hour(session: Session, practice: str, start: datetime) -> HourCounts:
    """Messages handed to Twilio, by the hour of ``sent_at``, from ``start`` on."""
    return _per_hour(session, OutboundMessage.sent_at, start,
                     OutboundMessage.practice == practice)  # fmt: skip


def delivered_per_hour(session: Session, practice: str, start: datetime) -> HourCounts:
    """Messages delivered, by the hour of ``completed_at``, from ``start`` on."""
    return _per_hour(session, OutboundMessage.completed_at, start,
                     OutboundMessage.practice == practice,
                     OutboundMessage.status == OutboxStatus.DELIVERED.value)  # fmt: skip


def failed_per_hour(session: Session, practice: str, start: datetime) -> HourCounts:
    """Messages failed or undelivered, by the hour they finished (``completed_at``, else
    ``updated_at``), from ``start`` on."""
    failed = (OutboxStatus.FAILED.value, OutboxStatus.UNDELIVERED.value)
    finished = func.coalesce(OutboundMessage.completed_at, OutboundMessage.updated_at)
    return _per_hour(session, finished, start, OutboundMessage.practice == practice,
                     OutboundMessage.status.in_(failed))  # fmt: skip


def opt_outs_per_hour(session: Session, practice: str, start: datetime) -> HourCounts:
    """Numbers that opted out, by the hour of the event, from ``start`` on (a STOP revoking two
    categories is one opt-out)."""
    return _per_hour(
        session, ConsentEvent.occurred_at, start, ConsentEvent.practice == practice,
        ConsentEvent.action == Action.OPT_OUT.value, count=distinct(ConsentEvent.phone),
    )  # fmt: skip


def _per_hour(
    session: Session, column: Any, start: datetime, *conditions: Any, count: Any = None
) -> HourCounts:
    """(UTC hour, count) of the rows whose ``column`` is at or after ``start``."""
    bucket = _hour(session, column)
    rows = session.execute(
        select(bucket, func.count(count) if count is not None else func.count())
        .where(column >= start, *conditions)
        .group_by(bucket)
    )
    return [(_as_utc(hour), n) for hour, n in rows]


def _hour(session: Session, column: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", column))
    return func.strftime("%Y-%m-%d %H:00:00", column)  # SQLite stores naive UTC text


def _as_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class OutboxCounts:
    #: scheduled, and its time has come: the next dispatch pass takes it
    due: int
    #: scheduled for later after a deferral or a retry (it has a reason)
    deferred: int
    #: scheduled for later, as enqueued
    upcoming: int
    #: sending, or uncertain (a dispatcher stopped mid-send)
    in_flight: int
    #: possible opt-outs awaiting staff review
    open_reviews: int


def outbox_counts(session: Session, practice: str, now: datetime) -> OutboxCounts:
    """The practice's outbox as it stands at ``now`` (two statements)."""
    scheduled = OutboundMessage.status == OutboxStatus.SCHEDULED.value
    later = OutboundMessage.next_attempt_at > now
    in_flight = OutboundMessage.status.in_(
        [OutboxStatus.SENDING.value, OutboxStatus.UNCERTAIN.value]
    )
    due, deferred, upcoming, sending = session.execute(
        select(
            func.count().filter(scheduled, OutboundMessage.next_attempt_at <= now),
            func.count().filter(scheduled, later, OutboundMessage.reason.is_not(None)),
            func.count().filter(scheduled, later, OutboundMessage.reason.is_(None)),
            func.count().filter(in_flight),
        ).where(
            OutboundMessage.practice == practice,
            OutboundMessage.status.in_(
                [
                    OutboxStatus.SCHEDULED.value,
                    OutboxStatus.SENDING.value,
                    OutboxStatus.UNCERTAIN.value,
                ]
            ),  # fmt: skip
        )
    ).one()
    open_reviews = session.scalar(
        select(func.count()).where(
            InboundMessage.practice == practice,
            InboundMessage.review_status == ReviewStatus.OPEN.value,
        )
    )
    return OutboxCounts(due, deferred, upcoming, sending, open_reviews or 0)
