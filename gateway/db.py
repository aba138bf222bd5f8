"""Engine and per-request sessions: ``get_session()`` lazily on ``g``, closed at teardown."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from gateway import send_lock


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
    kwargs.setdefault("pool_pre_ping", True)
    # An unreachable server fails fast: webhooks answer 503 well within Twilio's 15 s, and
    # Twilio tries the fallback URL.
    if "connect_timeout" not in url:
        kwargs.setdefault("connect_args", {"connect_timeout": 3})
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


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


def init_app(app: Flask, url: str, *, pool_size: int = 5) -> Database:
    """``pool_size``: connections kept per process (the scheduler's send threads each hold one
    while Twilio answers); the pool opens them only as they are needed."""
    options = {} if url.startswith("sqlite") else {"pool_size": pool_size}
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
