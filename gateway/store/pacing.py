"""Per-sender pacing shared by every dispatcher: a carrier's messages-per-second limit is kept
across all scheduler processes on all machines.

Each sender (a number or a Messaging Service) has one row holding its next free slot, in seconds
since the epoch. Reserving slots reads the row under its lock (``FOR UPDATE`` on PostgreSQL,
SQLite's single writer) and moves it forward by ``1 / rate`` a slot, in one transaction, so
concurrent reservations take distinct slots; a dispatcher reserves the slots of a whole batch
at once. A dispatcher then waits for its slot. A slot further away than ``horizon`` is not taken:
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

from sqlalchemy import insert, select, update
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
        slots = self.reserve_many(sender, 1)
        return slots if isinstance(slots, Busy) else slots[0]

    def reserve_many(self, sender: str, count: int) -> list[Slot] | Busy:
        """Take up to ``count`` of the sender's next slots, one interval apart, as many as lie
        within the horizon (at least one), in one transaction; ``Busy`` when even the next is
        beyond it."""
        now = self.now()
        rate = self.rates.get(sender)
        if not rate:
            return [Slot(now)] * count
        interval = 1.0 / rate
        row = SenderPacing.__table__
        for _ in range(3):
            with self.sessions() as session:
                next_slot = session.scalar(
                    select(row.c.next_slot).where(row.c.sender == sender).with_for_update()
                )
                if next_slot is None:
                    start = now
                elif next_slot < now or next_slot > now + self.horizon + interval + SKEW:
                    start = now  # idle, or a clock that went back (see the module's notes)
                elif next_slot > now + self.horizon:
                    session.rollback()
                    return Busy(next_slot)
                else:
                    start = next_slot
                taken = min(count, int((now + self.horizon - start) / interval) + 1)
                values = {"next_slot": start + taken * interval}
                try:
                    if next_slot is None:
                        session.execute(insert(row).values(sender=sender, **values))
                    else:
                        session.execute(update(row).where(row.c.sender == sender).values(**values))
                    session.commit()
                except IntegrityError:  # another dispatcher created the row first: again
                    session.rollback()
                    continue
                return [Slot(start + n * interval) for n in range(taken)]
        raise RuntimeError(f"could not reserve a slot for {sender}")  # pragma: no cover

    def wait(self, slot: Slot) -> None:
        """Sleep until the slot."""
        delay = slot.at - self.now()
        if delay > 0:
            self.sleep(delay)
