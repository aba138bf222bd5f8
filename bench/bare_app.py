"""The bare-stack floor of the inbound webhook benchmark (``bench/inbound.py`` serves it).

The least an inbound webhook on this stack can do: Flask under the same gunicorn settings, check
the X-Twilio-Signature with the twilio SDK's ``RequestValidator`` against ``PUBLIC_BASE_URL`` +
path, insert one row (in a table of its own, ``bench_floor``) through a SQLAlchemy ORM session
into the same kind of database, and answer an empty TwiML ``<Response/>``. The gateway is
measured against it.

The SQLite connection settings are the gateway's (WAL, ``synchronous=NORMAL``, ``BEGIN
IMMEDIATE``), written out here so that the floor does not move when the gateway's code does.

Environment: ``DATABASE_URL``, ``TWILIO_AUTH_TOKEN``, ``PUBLIC_BASE_URL``. The table is created by
``create_table(url)`` before the server starts (``bench/inbound.py`` does it). gunicorn loads
it from the project directory with the factory syntax: ``gunicorn 'bench.bare_app:create_app()'``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import DateTime, Engine, Integer, String, Text, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse


class Base(DeclarativeBase):
    pass


class FloorMessage(Base):
    __tablename__ = "bench_floor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20))
    sender: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_table(url: str) -> None:
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()


def create_app() -> Flask:
    app = Flask(__name__)
    sessions = sessionmaker(make_engine(os.environ["DATABASE_URL"]))
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    public_base = os.environ["PUBLIC_BASE_URL"].rstrip("/")

    @app.post("/webhooks/twilio/inbound")
    def inbound() -> Any:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not validator.validate(
            public_base + request.path, request.form, signature
        ):
            return {"error": "missing or invalid X-Twilio-Signature"}, 403
        form = request.form
        with sessions.begin() as session:
            session.add(
                FloorMessage(
                    message_sid=form.get("MessageSid", ""),
                    phone=form.get("From", ""),
                    sender=form.get("To", ""),
                    body=form.get("Body", ""),
                    received_at=datetime.now(UTC),
                )
            )
        return Response(str(MessagingResponse()), mimetype="application/xml")

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return app
