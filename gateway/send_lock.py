"""Sends to one number, and consent changes to it, happen one at a time (PostgreSQL).

Without this, a STOP committed between the dispatcher's consent check and its request to Twilio
would be followed by a text, and two dispatchers could each find a number under its frequency
cap and both send. The dispatcher holds an advisory lock on the recipient's number from the
consent check until Twilio has answered; recording a consent event takes the same lock for the
rest of its transaction. So a STOP waits for a send already under way (at most one Twilio round
trip), and a send that starts after the STOP committed reads it.

Session-level locks go with the connection: a dispatcher that dies releases them. SQLite has one
writer and no advisory locks; there the window is the few milliseconds between the check and
the request (documented; the gateway's scale-out runs on PostgreSQL).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

#: keeps the gateway's keys apart from any other advisory lock user of the database
_NAMESPACE = 0x5E << 52
_DIGITS = (1 << 52) - 1  # 15 digits need 50 bits


def key(phone: str) -> int:
    """The lock key of a number: its E.164 digits under the gateway's namespace (a bigint)."""
    digits = phone.lstrip("+")
    value = int(digits) if digits.isdigit() and len(digits) <= 15 else zlib.crc32(phone.encode())
    return _NAMESPACE | (value & _DIGITS)


def supported(dialect_name: str) -> bool:
    return dialect_name == "postgresql"


def hold(connection: Connection, phones: Iterable[str]) -> list[int]:
    """Lock each number (in a fixed order, so that no two holders deadlock) until ``release``
    or the connection closes; commits; returns the keys."""
    keys = sorted({key(p) for p in phones})
    for k in keys:
        connection.execute(select(func.pg_advisory_lock(k)))
    connection.commit()
    return keys


def release(connection: Connection, keys: Iterable[int]) -> None:
    for k in keys:
        connection.execute(select(func.pg_advisory_unlock(k)))
    connection.commit()


class Striped:
    """The same exclusion between the threads of one process, on any database: a fixed set of
    locks, a number mapped to one of them (numbers sharing a lock just wait a little)."""

    def __init__(self, stripes: int = 256) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    @contextmanager
    def hold(self, phones: Iterable[str]) -> Iterator[None]:
        taken = [self._locks[i] for i in sorted({key(p) % len(self._locks) for p in phones})]
        for lock in taken:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(taken):
                lock.release()


def exclusive(session: Session, phone: str) -> None:
    """Wait for sends to ``phone`` under way; held until the session's transaction ends."""
    if supported(session.get_bind().dialect.name):
        session.execute(select(func.pg_advisory_xact_lock(key(phone))))
