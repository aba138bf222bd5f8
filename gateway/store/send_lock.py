"""Sends to one number, and consent changes to it, happen one at a time (PostgreSQL).

Without this, a STOP committed between the dispatcher's consent check and its request to Twilio
would be followed by a text, and two dispatchers could each find a number under its frequency
cap and both send. The dispatcher holds an advisory lock on the recipient's number from the
consent check until Twilio has answered; recording a consent event takes the same lock for the
rest of its transaction. So a STOP waits for a send already under way (at most one Twilio round
trip), and a send that starts after the STOP committed reads it.

Session-level locks go with the connection: a dispatcher that dies releases them.

SQLite has no advisory locks, and the web and the scheduler are separate processes on one
machine: there the lock of a number is an ``flock`` on one of a fixed set of files next to the
database file (``<database>-locks/<n>.lock``, ``n`` from the number's key, so a file name says
nothing about a number), which the kernel releases when its holder dies. SQLite's single writer
adds a rule: whoever holds the database's write lock must not wait for a number's lock held by
someone who may be waiting for the database. So the dispatcher takes a number's lock before its
transaction begins, and so do the webhook and the erasure (``before``); a consent change in the
middle of a transaction that finds the number locked waits a bounded time and then fails (503)
rather than risk that wait.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
import weakref
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import BigInteger, Connection, Engine, bindparam, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, SessionTransaction

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


@contextmanager
def holding(engine: Engine, phones: Iterable[str]) -> Iterator[Session]:
    """A session on a connection of its own that holds each number's lock (``hold``) for the
    block; after it, the session's transaction is rolled back and the locks released."""
    with engine.connect() as connection:
        keys = hold(connection, phones)
        try:
            with Session(bind=connection, expire_on_commit=False) as session:
                yield session
        finally:
            connection.rollback()
            release(connection, keys)


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


class FileLocks:
    """Per-number locks across the processes of one machine: ``flock`` on one of ``stripes``
    files in ``directory`` (numbers sharing a file just wait a little). ``flock`` locks belong
    to an open file, so two threads of one process exclude each other too."""

    def __init__(self, directory: Path, stripes: int = 1024) -> None:
        self.directory = directory
        self.stripes = stripes
        self._paths = [os.path.join(directory, f"{n}.lock") for n in range(stripes)]

    def stripe(self, phone: str) -> int:
        return key(phone) % self.stripes

    def acquire(self, stripe: int, *, blocking: bool = True) -> int | None:
        """Lock one stripe; returns the open file (its descriptor) holding it, or None when
        ``blocking`` is False and someone else holds it."""
        try:
            fd = os.open(self._paths[stripe], os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the first lock of the database (or its folder was removed)
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._paths[stripe], os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return None
            raise
        return fd

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing the file releases its lock

    @contextmanager
    def hold(self, phones: Iterable[str]) -> Iterator[None]:
        """Lock every number (in a fixed order: no two holders deadlock) for the block."""
        fds: list[int] = []
        try:
            for stripe in sorted({self.stripe(p) for p in phones}):
                fd = self.acquire(stripe)
                assert fd is not None
                fds.append(fd)
            yield
        finally:
            for fd in reversed(fds):
                self.release(fd)


_file_locks: dict[str, FileLocks] = {}
_file_locks_guard = threading.Lock()
#: each engine's answer of ``file_locks`` (asked on every webhook: one look-up, no path work)
_of_engine: weakref.WeakKeyDictionary[Engine, FileLocks | None] = weakref.WeakKeyDictionary()


def file_locks(engine: Engine) -> FileLocks | None:
    """The cross-process locks of a SQLite database file (None for other databases and for an
    in-memory SQLite, which only one process can see)."""
    try:
        return _of_engine[engine]
    except KeyError:
        pass
    locks = _file_locks_of(engine)
    if isinstance(engine, Engine):  # not a session's connection (they come and go)
        _of_engine[engine] = locks
    return locks


def _file_locks_of(engine: Engine) -> FileLocks | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    path = os.path.abspath(database.removeprefix("file:").split("?")[0])
    with _file_locks_guard:
        if path not in _file_locks:
            _file_locks[path] = FileLocks(Path(path + "-locks"))
        return _file_locks[path]


#: how long a consent change inside a SQLite transaction waits for a send under way
MID_TRANSACTION_WAIT = 10.0
_HELD = "gateway.send_locks"
#: the number's advisory lock until the transaction ends (built once: a consent change takes it)
_XACT_LOCK = select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger)))


def exclusive(session: Session, phone: str) -> None:
    """Wait for sends to ``phone`` under way; held until the session's transaction ends."""
    bind = session.get_bind()
    if supported(bind.dialect.name):
        session.execute(_XACT_LOCK, {"key": key(phone)})
        return
    locks = file_locks(bind)  # type: ignore[arg-type]
    if locks is None:
        return
    held: dict[int, int] = session.info.setdefault(_HELD, {})
    stripe = locks.stripe(phone)
    if stripe in held:
        return
    if not session.in_transaction():
        fd = locks.acquire(stripe)
    else:  # holding the database's write lock: never wait without a bound
        deadline = time.monotonic() + MID_TRANSACTION_WAIT
        while (fd := locks.acquire(stripe, blocking=False)) is None:
            if time.monotonic() > deadline:
                raise OperationalError(
                    "waiting for a send to the number under way", None,
                    TimeoutError("the number's send lock was not released in time"),
                )  # fmt: skip
            time.sleep(0.005)
    assert fd is not None
    held[stripe] = fd


def before(session: Session, phones: Iterable[str]) -> None:
    """Take the numbers' locks before the session's transaction begins, where they are file
    locks (SQLite: see the module's notes); held until that transaction ends. Elsewhere nothing:
    ``exclusive`` inside the transaction is enough."""
    locks = file_locks(session.get_bind())  # type: ignore[arg-type]
    if locks is None:
        return
    for phone in sorted(set(phones), key=locks.stripe):
        exclusive(session, phone)


def release_all(session: Session) -> None:
    """Release the file locks the session holds (its transaction ended, or it is closing)."""
    held = session.info.pop(_HELD, None)
    for fd in (held or {}).values():
        FileLocks.release(fd)


@event.listens_for(Session, "after_transaction_end")
def _release_at_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and session.info.get(_HELD):
        release_all(session)
