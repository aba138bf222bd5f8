"""Sends to one number, and consent changes to it, happen one at a time (PostgreSQL).

Without this, a STOP committed between the dispatcher's consent check and its request to Twilio
would be followed by a text, and two dispatchers could each find a number under its frequency
cap and both send. The dispatcher holds an advisory lock on each number a message may go to
from the consent check until Twilio's answer is recorded (a batch's numbers at once, without
waiting: ``Held``); recording a consent event takes the same lock for the rest of its
transaction. So a STOP waits for a send already under way (one Twilio round trip, and the
moment its batch takes to record the answer), and a send that starts after the STOP committed
reads it.

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
import resource
import threading
import time
import weakref
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import BigInteger, Connection, Engine, bindparam, event, func, select, text
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


def try_hold(connection: Connection, phones: Iterable[str]) -> set[str]:
    """Lock each number that nobody else holds, without waiting (one statement; try-locks
    cannot deadlock), until ``release`` or the connection closes; commits. Returns the numbers
    locked."""
    by_key = {key(p): p for p in phones}
    if not by_key:
        return set()
    taken = connection.execute(
        text("SELECT k FROM unnest(CAST(:keys AS bigint[])) AS t(k) WHERE pg_try_advisory_lock(k)"),
        {"keys": sorted(by_key)},
    ).scalars()
    locked = {by_key[k] for k in taken}
    connection.commit()
    return locked


def hold(connection: Connection, phones: Iterable[str]) -> None:
    """Lock each number, waiting for its holder (in a fixed order, so that no two waiting
    holders deadlock), until ``release`` or the connection closes; commits."""
    for k in sorted({key(p) for p in phones}):
        connection.execute(select(func.pg_advisory_lock(k)))
    connection.commit()


def release(connection: Connection, phones: Iterable[str]) -> None:
    """Let go of numbers ``try_hold`` or ``hold`` locked on ``connection`` (one statement)."""
    keys = sorted({key(p) for p in phones})
    if keys:
        connection.execute(
            text("SELECT pg_advisory_unlock(k) FROM unnest(CAST(:keys AS bigint[])) AS t(k)"),
            {"keys": keys},
        )
        connection.commit()


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

    @staticmethod
    def relock(fd: int) -> bool:
        """Lock again, without waiting, a file ``unlock`` let go of (False: someone holds it)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        return True

    @staticmethod
    def unlock(fd: int) -> None:
        """Let go of the lock, keeping the file open for ``relock``."""
        fcntl.flock(fd, fcntl.LOCK_UN)

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


class Held:
    """The numbers this process's dispatchers hold, a batch at a time (one per database).

    Three layers, so that two holders never send to one number at once: the exact numbers held
    in this process (any database; threads of one process, and two dispatchers in one process);
    on PostgreSQL, advisory locks on the holder's connection (``try_hold``/``hold``); on a SQLite
    file, ``flock`` stripes (``FileLocks``) kept open once per process however many of its
    numbers share them, so that one batch's numbers do not shut out another batch of the same
    process on a shared stripe.

    ``try_take`` never waits: a batch takes what is free and leaves the rest for ``take``, which
    waits (in a fixed order: no two waiting holders deadlock).
    """

    #: lock files kept open, unlocked, for the next batch: every stripe, within a quarter of
    #: the process's open-file limit
    IDLE_FILES = min(1024, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4)

    def __init__(self, engine: Engine) -> None:
        self.postgres = supported(engine.dialect.name)
        self.files = file_locks(engine)
        self._numbers: set[str] = set()
        self._wanted: Counter[str] = Counter()  # numbers ``take`` is (about to be) waiting for
        self._free = threading.Condition()
        self._stripes: dict[int, list[int]] = {}  # stripe -> [open file, numbers using it]
        self._idle: dict[int, int] = {}  # stripe -> its file, open but unlocked

    def try_take(
        self, groups: Iterable[frozenset[str]], connection: Connection | None = None
    ) -> list[bool]:
        """Take every number of each group whose numbers are all free, without waiting
        (``connection``: PostgreSQL's, which then holds the advisory locks). Returns, per
        group, whether it was taken."""
        groups = list(groups)
        taken = [False] * len(groups)
        with self._free:
            for n, numbers in enumerate(groups):
                if self._wanted.keys() & numbers or numbers & self._numbers:
                    continue  # held here, or waited for here: those waiting go first
                if self._take_stripes(numbers, blocking=False):
                    self._numbers |= numbers
                    taken[n] = True
        if self.postgres and connection is not None and any(taken):
            wanted = set().union(*(g for g, t in zip(groups, taken, strict=True) if t))
            try:
                locked = try_hold(connection, wanted)
            except BaseException:
                self._give_back_here(wanted)
                raise
            refused = [n for n, g in enumerate(groups) if taken[n] and not g <= locked]
            if refused:
                back = set().union(*(groups[n] for n in refused))
                release(connection, back & locked)
                self._give_back_here(back)
                for n in refused:
                    taken[n] = False
        return taken

    def want(self, numbers: Iterable[str]) -> None:
        """Say that ``take`` will be called for ``numbers``: until then ``try_take`` leaves
        them (so that a holder that does not wait cannot overtake, forever, one that does)."""
        with self._free:
            self._wanted.update(numbers)

    def unwant(self, numbers: Iterable[str]) -> None:
        """Take back a ``want`` for which ``take`` will not be called."""
        with self._free:
            self._wanted.subtract(numbers)
            self._wanted = +self._wanted

    def take(self, numbers: frozenset[str], connection: Connection | None = None) -> None:
        """Take ``numbers`` (which ``want`` announced), waiting for whoever holds them, here or
        in another process."""
        with self._free:
            self._free.wait_for(lambda: not numbers & self._numbers)
            self._numbers |= numbers
            self._wanted.subtract(numbers)
            self._wanted = +self._wanted  # drops the numbers nobody waits for any more
        try:
            self._take_stripes(numbers, blocking=True)
        except BaseException:
            with self._free:
                self._numbers -= numbers
                self._free.notify_all()
            raise
        if self.postgres and connection is not None:
            try:
                hold(connection, numbers)
            except BaseException:
                self._give_back_here(set(numbers))
                raise

    def give_back(self, numbers: Iterable[str], connection: Connection | None = None) -> None:
        """Let go of numbers taken by ``try_take`` or ``take`` (on the same ``connection``)."""
        numbers = set(numbers)
        try:
            if self.postgres and connection is not None and numbers:
                release(connection, numbers)
        finally:
            self._give_back_here(numbers)

    def _give_back_here(self, numbers: set[str]) -> None:
        with self._free:
            self._numbers -= numbers
            self._drop_stripes(numbers)
            self._free.notify_all()

    def _take_stripes(self, numbers: frozenset[str], *, blocking: bool) -> bool:
        """Count ``numbers`` on their file stripes, locking those this process does not hold
        yet. Non-blocking: called with ``_free`` held, all or nothing. Blocking: called without
        it (the wait is for another process), stripe by stripe in order."""
        if self.files is None:
            return True
        files, taken = self.files, []
        for stripe in sorted({files.stripe(p) for p in numbers}):
            if blocking:
                try:
                    self._wait_for_stripe(stripe)
                except BaseException:
                    with self._free:
                        self._drop(taken)
                    raise
                taken.append(stripe)
                continue
            known = self._stripes.get(stripe)
            if known is None:
                fd = self._idle.pop(stripe, None)
                if fd is not None and not FileLocks.relock(fd):
                    self._idle[stripe] = fd
                    fd = None
                elif fd is None:
                    fd = files.acquire(stripe, blocking=False)
                if fd is None:
                    self._drop(taken)
                    return False
                known = self._stripes[stripe] = [fd, 0]
            known[1] += 1
            taken.append(stripe)
        return True

    def _wait_for_stripe(self, stripe: int) -> None:
        with self._free:
            known = self._stripes.get(stripe)
            if known is not None:
                known[1] += 1
                return
        assert self.files is not None
        fd = self.files.acquire(stripe)  # waits for the other process
        assert fd is not None
        with self._free:
            known = self._stripes.setdefault(stripe, [fd, 0])
            if known[0] != fd:  # this process took it meanwhile
                FileLocks.release(fd)
            known[1] += 1

    def _drop_stripes(self, numbers: Iterable[str]) -> None:
        if self.files is not None:
            self._drop(sorted({self.files.stripe(p) for p in numbers}))

    def _drop(self, stripes: Iterable[int]) -> None:
        for stripe in stripes:
            known = self._stripes[stripe]
            known[1] -= 1
            if known[1] == 0:
                del self._stripes[stripe]
                if len(self._idle) < self.IDLE_FILES:  # kept open: no open() next time
                    FileLocks.unlock(known[0])
                    self._idle[stripe] = known[0]
                else:
                    FileLocks.release(known[0])


_held: weakref.WeakKeyDictionary[Engine, Held] = weakref.WeakKeyDictionary()
_held_guard = threading.Lock()


def held(engine: Engine) -> Held:
    """The process's ``Held`` for ``engine``'s database (one per engine)."""
    with _held_guard:
        if (found := _held.get(engine)) is None:
            found = _held[engine] = Held(engine)
        return found
