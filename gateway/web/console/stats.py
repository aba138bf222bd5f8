"""The dashboard's figures: messages sent, delivered and failed and opt-outs per day over the last
30 days, in the practice's time zone, and the outbox as it stands. No Flask here.

Counting is done by the database in hourly buckets (UTC), which Python then adds up into local
days: both databases group the same way, and a day boundary in any whole-hour time zone, across
DST changes too, falls between two buckets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.orm import Session

from gateway.config import Practice
from gateway.core.domain import Action, OutboxStatus, ReviewStatus
from gateway.store.models import ConsentEvent, InboundMessage, OutboundMessage

DAYS = 30
SERIES = ("sent", "delivered", "failed", "opt_outs")


@dataclass(frozen=True)
class DailyCounts:
    days: list[date]
    #: series name -> one count per day of ``days``
    series: dict[str, list[int]]

    def rows(self) -> list[tuple[date, dict[str, int]]]:
        return [(day, {n: self.series[n][i] for n in SERIES}) for i, day in enumerate(self.days)]

    def totals(self) -> dict[str, int]:
        return {name: sum(values) for name, values in self.series.items()}


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


def daily_counts(session: Session, practice: Practice, now: datetime) -> DailyCounts:
    """Per local day, the last ``DAYS`` days up to today."""
    zone = ZoneInfo(practice.time_zone)
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    start = datetime.combine(days[0], datetime.min.time(), zone).astimezone(UTC)
    mine = OutboundMessage.practice == practice.slug
    failed = (OutboxStatus.FAILED.value, OutboxStatus.UNDELIVERED.value)
    finished = func.coalesce(OutboundMessage.completed_at, OutboundMessage.updated_at)
    queries = {
        "sent": _per_hour(session, OutboundMessage.sent_at, start, mine),
        "delivered": _per_hour(session, OutboundMessage.completed_at, start, mine,
                               OutboundMessage.status == OutboxStatus.DELIVERED.value),
        "failed": _per_hour(session, finished, start, mine, OutboundMessage.status.in_(failed)),
        # numbers that opted out (a STOP revoking two categories is one opt-out)
        "opt_outs": _per_hour(
            session, ConsentEvent.occurred_at, start, ConsentEvent.practice == practice.slug,
            ConsentEvent.action == Action.OPT_OUT.value, count=distinct(ConsentEvent.phone),
        ),
    }  # fmt: skip
    series = {}
    for name, hours in queries.items():
        per_day: Counter[date] = Counter()
        for hour, count in hours:
            per_day[hour.astimezone(zone).date()] += count
        series[name] = [per_day.get(day, 0) for day in days]
    return DailyCounts(days=days, series=series)


def _per_hour(
    session: Session, column: Any, start: datetime, *conditions: Any, count: Any = None
) -> list[tuple[datetime, int]]:
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


def outbox_counts(session: Session, practice: Practice, now: datetime) -> OutboxCounts:
    """The practice's outbox as it stands."""
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
            OutboundMessage.practice == practice.slug,
            OutboundMessage.status.in_(
                [OutboxStatus.SCHEDULED.value, OutboxStatus.SENDING.value,
                 OutboxStatus.UNCERTAIN.value]
            ),  # fmt: skip
        )
    ).one()
    open_reviews = session.scalar(
        select(func.count()).where(
            InboundMessage.practice == practice.slug,
            InboundMessage.review_status == ReviewStatus.OPEN.value,
        )
    )
    return OutboxCounts(due, deferred, upcoming, sending, open_reviews or 0)
