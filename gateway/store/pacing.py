"""Per-sender pacing shared by every dispatcher: a carrier's messages-per-second limit is kept
across all scheduler processes on all machines.

Each sender (a number or a Messaging Service) has one row holding its next free slot, in seconds
since the epoch. Reserving a slot is one UPDATE that moves the row forward by ``1 / rate``;
PostgreSQL's row lock (SQLite's single writer) makes concurrent reservations take distinct
slots. A dispatcher then waits for its slot. A slot further away than ``horizon`` is not taken:
the message goes back to the outbox for that time, so a long queue behind a slow sender does not
hold a dispatcher's threads.

Since a slot is only taken within the horizon, a next free slot further ahead than the horizon
plus one interval (and ``SKEW`` for the clocks of different machines) can only come from a clock
that went back: it is taken as now, so a clock step does not stall a sender.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.models import SenderPacing

#: how far apart the clocks of the machines running dispatchers may be (seconds)
SKEW = 30.0


@dataclass(frozen=True)
class Slot:
    """Send at ``at`` (epoch seconds): the sender's slot is reserved."""

    at: float


@dataclass(frozen=True)
class Busy:
    """The sender's next free slot is at ``next_free`` (epoch seconds), beyond the horizon."""

    next_free: float


class Pacer:
    """Reserves send slots; senders without a rate are not paced (``reserve`` answers now)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rates: Mapping[str, float | None],
        *,
        horizon: float = 2.0,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sessions = sessions
        self.rates = dict(rates)
        self.horizon = horizon
        self.now = now
        self.sleep = sleep

    def paced(self, sender: str) -> bool:
        return bool(self.rates.get(sender))

    def reserve(self, sender: str) -> Slot | Busy:
        """Take the sender's next slot if it is within the horizon."""
        now = self.now()
        rate = self.rates.get(sender)
        if not rate:
            return Slot(now)
        interval = 1.0 / rate
        row = SenderPacing.__table__
        stale = row.c.next_slot > now + self.horizon + interval + SKEW
        start = case((row.c.next_slot < now, now), (stale, now), else_=row.c.next_slot)
        for _ in range(3):
            with self.sessions() as session:
                taken = session.execute(
                    update(row)
                    .where(row.c.sender == sender, (row.c.next_slot <= now + self.horizon) | stale)
                    .values(next_slot=start + interval)
                    .returning(row.c.next_slot)
                ).scalar()
                if taken is not None:
                    session.commit()
                    return Slot(taken - interval)
                next_free = session.scalar(select(row.c.next_slot).where(row.c.sender == sender))
                if next_free is not None:
                    session.rollback()
                    if next_free > now + self.horizon:
                        return Busy(next_free)
                    continue  # another dispatcher created the row meanwhile: reserve again
                try:
                    session.execute(insert(row).values(sender=sender, next_slot=now + interval))
                    session.commit()
                    return Slot(now)
                except IntegrityError:  # another dispatcher created the row first: reserve again
                    session.rollback()
        raise RuntimeError(f"could not reserve a slot for {sender}")  # pragma: no cover

    def wait(self, slot: Slot) -> None:
        """Sleep until the slot."""
        delay = slot.at - self.now()
        if delay > 0:
            self.sleep(delay)
