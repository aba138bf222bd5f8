"""The log of inbound texts: one row per Twilio MessageSid, recorded once.

``record`` inserts a text and, when it is new, creates or updates its contact; a MessageSid
already recorded inserts nothing (Twilio may deliver a text twice, or twice at the same moment).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.store import contacts
from gateway.store.models import InboundMessage

_INBOUND = InboundMessage.__table__

#: the columns ``record`` takes from ``values``
MESSAGE_COLUMNS = (
    "message_sid", "practice", "phone", "sender", "body", "num_media", "received_at", "intent",
    "language", "keyword", "rule", "opt_out_type", "review_status", "reply",
)  # fmt: skip


def record(session: Session, values: Mapping[str, Any], contact: Mapping[str, Any]) -> int | None:
    """Insert one inbound text; returns its new id, or None when its ``message_sid`` is already
    recorded (then nothing at all is written). Does not commit.

    ``values`` holds every column of ``MESSAGE_COLUMNS``. A new text also creates or updates its
    contact (``practice``, ``phone``) with the columns of ``contact``, as ``contacts.upsert``
    does: on PostgreSQL in the same statement (one round trip), elsewhere in a second statement
    after the insert. The insert is ``INSERT ... ON CONFLICT (message_sid) DO NOTHING
    RETURNING id``, so two deliveries of one MessageSid at the same moment record it once.
    """
    if session.get_bind().dialect.name == "postgresql":
        parameters = {
            **values, **contacts.upsert_values(values["practice"], values["phone"], **contact)
        }  # fmt: skip
        return session.scalar(_record_statement("postgresql", tuple(contact)), parameters)
    message_id = session.scalar(_record_statement("sqlite", None), dict(values))
    if message_id is not None:
        contacts.upsert(session, values["practice"], values["phone"], **contact)
    return message_id


@cache
def _record_statement(dialect: str, contact_columns: tuple[str, ...] | None) -> Executable:
    """``INSERT ... ON CONFLICT (message_sid) DO NOTHING RETURNING id``: the new row's id, or
    None when the MessageSid is already recorded. With ``contact_columns`` (PostgreSQL), also the
    contact's upsert in the same statement (one round trip less), run only when the message was
    new: ``WITH message AS (INSERT ... RETURNING id), contact AS (INSERT INTO contacts ... SELECT
    ... WHERE EXISTS (SELECT FROM message) ON CONFLICT ...) SELECT id FROM message``. Built once
    per dialect and set of contact columns."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    message = (
        insert(_INBOUND)
        .on_conflict_do_nothing(index_elements=[_INBOUND.c.message_sid])
        .returning(_INBOUND.c.id)
    )
    if contact_columns is None:
        return message
    message = message.values(
        {name: bindparam(name, type_=_INBOUND.c[name].type) for name in MESSAGE_COLUMNS}
    ).cte("message")
    contact = contacts.upsert_where(exists(select(message.c.id)), contact_columns)
    return select(message.c.id).add_cte(contact.cte("contact"))


def by_sid(session: Session, message_sid: str) -> InboundMessage | None:
    """The text recorded under ``message_sid``, or None (one SELECT, no lock)."""
    return session.scalar(select(InboundMessage).where(InboundMessage.message_sid == message_sid))
