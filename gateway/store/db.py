"""Engine and per-request sessions: ``get_session()`` lazily on ``g``, closed at teardown."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, has_request_context
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from gateway.store import send_lock

log = logging.getLogger("gateway.db")  # the name operators filter on

#: the database could not be reached or went silent (a connection refused, cut or timed out);
#: the layers above the store catch this name, never SQLAlchemy's
DatabaseUnavailable = OperationalError
#: no pooled connection came free within the pool's wait
NoConnectionFree = PoolTimeout
#: any failure of the database layer: the two above, and a statement the database refused
DatabaseFailure = SQLAlchemyError


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings this gateway relies on.

    SQLite: WAL, foreign keys, a busy timeout, and ``BEGIN IMMEDIATE`` so that a transaction that
    reads and then writes waits for the single writer instead of failing with "database is locked".
    """
    # Statement parameters carry message bodies and numbers: never put them in error messages.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let do_begin below issue BEGIN
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        # Every transaction starts with BEGIN IMMEDIATE, sent by the dialect's own begin step
        # (a no-op for pysqlite) straight to the driver: cheaper than a statement through the
        # engine in a "begin" event, and a failure ("database is locked" after the busy timeout)
        # is still raised as SQLAlchemy's OperationalError (a 503 for the webhooks).
        engine.dialect.do_begin = _sqlite_begin_immediate  # type: ignore[method-assign]
        return engine
    timeout = kwargs.pop("request_timeout", None)
    kwargs.setdefault("pool_pre_ping", True)
    # An unreachable server fails fast: webhooks answer 503 well within Twilio's 15 s, and
    # Twilio tries the fallback URL.
    if "connect_timeout" not in url:
        kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT})
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_timeout", CONNECT_TIMEOUT)  # waiting for a free pooled connection
    engine = create_engine(url, **kwargs)
    if timeout:
        bound_request_waits(engine, timeout)
    return engine


#: seconds to open a connection (PostgreSQL), and to wait for a free one in the pool
CONNECT_TIMEOUT = 2
#: seconds a pooled connection's liveness check (pre-ping) may take on a request
PING_TIMEOUT = 1.0


def bound_request_waits(engine: Engine, seconds: float) -> None:
    """Bound every wait for the server on a web request's connection (PostgreSQL).

    A server that stops answering but keeps its sockets open (a frozen primary, a partition
    behind a proxy) never makes a read fail: kernel timeouts (keepalives, ``tcp_user_timeout``)
    do not fire while the peer acknowledges, and a server-side ``statement_timeout`` never
    fires for a query that never arrived. So the application keeps the deadline: each
    statement, commit, rollback and pre-ping of a request is armed on a watchdog, which shuts
    the connection's socket down when the deadline passes. The blocked read then fails at once
    (psycopg: "server closed the connection"), SQLAlchemy discards the connection, the request
    answers 503, and the pool opens fresh connections when the server is back.
    ``connect_timeout`` bounds opening a connection and ``pool_timeout`` waiting for one.
    Outside a request (the scheduler, the CLI) nothing is bounded here.
    """
    dialect = engine.dialect

    def guarded(method: Any, connection_of: Any, limit: float) -> Any:
        def call(target: Any, *args: Any, **kwargs: Any) -> Any:
            fd = _socket_of(connection_of(target)) if has_request_context() else None
            if fd is None:
                return method(target, *args, **kwargs)
            token = _WATCHDOG.arm(fd, limit)
            try:
                return method(target, *args, **kwargs)
            finally:
                _WATCHDOG.disarm(token)

        return call

    def of_cursor(cursor: Any) -> Any:
        return cursor.connection

    def itself(connection: Any) -> Any:
        return connection

    for name in ("do_execute", "do_execute_no_params", "do_executemany"):
        setattr(dialect, name, guarded(getattr(dialect, name), of_cursor, seconds))
    for name in ("do_commit", "do_rollback"):
        setattr(dialect, name, guarded(getattr(dialect, name), itself, seconds))
    dialect.do_ping = guarded(dialect.do_ping, itself, min(seconds, PING_TIMEOUT))  # type: ignore[method-assign]


def _socket_of(dbapi_connection: Any) -> int | None:
    """The connection's socket (psycopg 3), or None when there is none to watch."""
    try:
        fd = dbapi_connection.pgconn.socket
    except Exception:  # closed, or another driver
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


class _Watchdog:
    """Shuts a socket down when its deadline passes, unless disarmed first. One daemon thread
    for the process; arming and disarming are a lock and a heap push each."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._armed: dict[int, int] = {}  # token -> socket
        self._deadlines: list[tuple[float, int]] = []
        self._tokens = itertools.count(1)
        self._thread: threading.Thread | None = None

    def arm(self, fd: int, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        with self._wake:
            token = next(self._tokens)
            self._armed[token] = fd
            heapq.heappush(self._deadlines, (deadline, token))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="db-watchdog",
                                                daemon=True)  # fmt: skip
                self._thread.start()
            if self._deadlines[0][1] == token:
                self._wake.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._wake:
            self._armed.pop(token, None)

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._deadlines and self._deadlines[0][1] not in self._armed:
                    heapq.heappop(self._deadlines)  # finished in time
                if not self._deadlines:
                    self._wake.wait(timeout=60)
                    continue
                deadline, token = self._deadlines[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._wake.wait(timeout=left)
                    continue
                heapq.heappop(self._deadlines)
                fd = self._armed.pop(token)
                _shut_down(fd)  # under the lock: the socket cannot be closed and reused meanwhile
                log.error("database: no answer within the deadline; connection dropped")


def _shut_down(fd: int) -> None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


_WATCHDOG = _Watchdog()


def _sqlite_begin_immediate(dbapi_connection: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
    finally:
        cursor.close()


class Database:
    """The app's engine and session factory (``app.extensions["gateway.db"]``)."""

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.engine = make_engine(url, **engine_options)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def dispose(self) -> None:
        self.engine.dispose()


def init_app(app: Flask, url: str, *, pool_size: int = 5, timeout: float | None = None) -> Database:
    """``pool_size``: connections kept per process (the scheduler's send threads each hold one
    while Twilio answers); the pool opens them only as they are needed. ``timeout``: the bound
    on each database wait of a web request (see ``bound_request_waits``)."""
    options: dict[str, Any] = (
        {} if url.startswith("sqlite") else {"pool_size": pool_size, "request_timeout": timeout}
    )
    database = Database(url, **options)
    app.extensions["gateway.db"] = database
    app.teardown_appcontext(_close_session)
    return database


def get_database() -> Database:
    return current_app.extensions["gateway.db"]


def get_session() -> Session:
    """The session of the current request or command, created on first use."""
    if "db_session" not in g:
        g.db_session = get_database().sessions()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
        send_lock.release_all(session)  # locks taken before a transaction that never began


def ping(session: Session) -> None:
    """Run ``SELECT 1`` on the session's connection (opening one if needed); raises
    :data:`DatabaseFailure` (usually :data:`DatabaseUnavailable`) when the database cannot be
    reached."""
    session.execute(text("SELECT 1"))


# -- work to do once a transaction is on record ------------------------------------------------

_ON_COMMIT = "gateway.db.on_commit"


def on_commit(session: Session, callback: Callable[[], object]) -> None:
    """Call ``callback()`` once the session's transaction commits, not if it is rolled back
    (its return value is ignored). Callbacks run in the order they were given."""
    session.info.setdefault(_ON_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for callback in session.info.pop(_ON_COMMIT, ()):
        callback()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_ON_COMMIT, None)


@contextmanager
def session_on(connection: Connection) -> Iterator[Session]:
    """A session on ``connection`` (whose session-level locks outlive its transactions); what
    it left uncommitted is rolled back at the end."""
    with Session(bind=connection, expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()
