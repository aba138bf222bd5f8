"""The queue figures ``GET /metrics`` shows, read from the database at each scrape: the outbox's
unfinished messages, the staff review queue and the failing event deliveries, grouped by
practice (``gateway.services.metrics.QueueCollector`` turns them into gauges)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store.models import EventDelivery, InboundMessage, OutboundMessage


@dataclass(frozen=True)
class QueueFigures:
    """Rows as the database grouped them; times as stored (naive UTC on SQLite)."""

    #: (practice, status, count) of messages ``scheduled``, ``sending`` or ``uncertain``
    unfinished: list[tuple[str, str, int]]
    #: (practice, count, earliest ``next_attempt_at``) of scheduled messages due at ``now``
    due: list[tuple[str, int, datetime | None]]
    #: (practice, count, earliest ``received_at``) of possible opt-outs awaiting review
    reviews: list[tuple[str, int, datetime | None]]
    #: (practice, status, count) of event deliveries ``failed``, or ``pending`` after an attempt
    failing_events: list[tuple[str, str, int]]


def queue_figures(session: Session, now: datetime) -> QueueFigures:
    """The four grouped reads behind the queue gauges (read-only; four statements)."""
    unfinished = session.execute(
        select(OutboundMessage.practice, OutboundMessage.status, func.count())
        .where(OutboundMessage.status.in_(("scheduled", "sending", "uncertain")))
        .group_by(OutboundMessage.practice, OutboundMessage.status)
    ).all()
    due = session.execute(
        select(
            OutboundMessage.practice,
            func.count(),
            func.min(OutboundMessage.next_attempt_at),
        )
        .where(
            OutboundMessage.status == "scheduled",
            OutboundMessage.next_attempt_at <= now,
        )
        .group_by(OutboundMessage.practice)
    ).all()
    reviews = session.execute(
        select(InboundMessage.practice, func.count(), func.min(InboundMessage.received_at))
        .where(InboundMessage.review_status == "open")
        .group_by(InboundMessage.practice)
    ).all()
    failing = session.execute(
        select(EventDelivery.practice, EventDelivery.status, func.count())
        .where(
            (EventDelivery.status == "failed")
            | ((EventDelivery.status == "pending") & (EventDelivery.attempts > 0))
        )
        .group_by(EventDelivery.practice, EventDelivery.status)
    ).all()
    return QueueFigures(
        unfinished=[(practice, status, count) for practice, status, count in unfinished],
        due=[(practice, count, earliest) for practice, count, earliest in due],
        reviews=[(practice, count, earliest) for practice, count, earliest in reviews],
        failing_events=[(practice, status, count) for practice, status, count in failing],
    )
