"""The dashboard's figures: messages sent, delivered and failed and opt-outs per day over the last
30 days, in the practice's time zone, and the outbox as it stands. No Flask here.

Counting is done by the database in hourly buckets (UTC; ``gateway.store.console_reads``), which
this module then adds up into local days: both databases group the same way, and a day boundary
in any whole-hour time zone, across DST changes too, falls between two buckets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gateway.config import Practice
from gateway.store import console_reads
from gateway.store.console_reads import HourCounts, OutboxCounts

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["DAYS", "SERIES", "DailyCounts", "OutboxCounts", "daily_counts", "outbox_counts"]

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


def daily_counts(session: Session, practice: Practice, now: datetime) -> DailyCounts:
    """Per local day, the last ``DAYS`` days up to today."""
    zone = ZoneInfo(practice.time_zone)
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    start = datetime.combine(days[0], datetime.min.time(), zone).astimezone(UTC)
    reads = {
        "sent": console_reads.sent_per_hour,
        "delivered": console_reads.delivered_per_hour,
        "failed": console_reads.failed_per_hour,
        "opt_outs": console_reads.opt_outs_per_hour,
    }
    series = {
        name: per_local_day(read(session, practice.slug, start), zone, days)
        for name, read in reads.items()
    }
    return DailyCounts(days=days, series=series)


def per_local_day(hours: HourCounts, zone: ZoneInfo, days: list[date]) -> list[int]:
    """The hourly counts added up into local ``days`` of ``zone`` (one count per day, in their
    order; hours outside them are left out)."""
    per_day: Counter[date] = Counter()
    for hour, count in hours:
        per_day[hour.astimezone(zone).date()] += count
    return [per_day.get(day, 0) for day in days]


def outbox_counts(session: Session, practice: Practice, now: datetime) -> OutboxCounts:
    """The practice's outbox as it stands."""
    return console_reads.outbox_counts(session, practice.slug, now)
