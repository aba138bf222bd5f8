"""What export reads and erasure changes of one number in one practice
(``gateway.services.rights`` decides the order and keeps the counts).

Every statement here is bulk (``synchronize_session=False``): objects already loaded in the
session keep their old attributes until they are expired or reloaded. None commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from gateway.core.domain import OutboxStatus
from gateway.store import contacts
from gateway.store.models import EventDelivery, InboundMessage, OutboundMessage
from gateway.store.privacy import cited_inbound_ids

_BULK: dict[str, Any] = {"synchronize_session": False}


def inbound_messages(session: Session, practice: str, phone: str) -> list[InboundMessage]:
    """Every text the number sent the practice, oldest first (by receipt, then id)."""
    return list(session.scalars(
        select(InboundMessage)
        .where(InboundMessage.practice == practice, InboundMessage.phone == phone)
        .order_by(InboundMessage.received_at, InboundMessage.id)
    ))  # fmt: skip


def outbound_messages(session: Session, practice: str, phone: str) -> list[OutboundMessage]:
    """Every text the practice sent or meant for the number, or delivered to it as someone's
    guardian or designated number (``sent_to``), oldest first (by creation, then id)."""
    return list(session.scalars(
        select(OutboundMessage)
        .where(
            OutboundMessage.practice == practice,
            or_(OutboundMessage.phone == phone, OutboundMessage.sent_to == phone),
        )
        .order_by(OutboundMessage.created_at, OutboundMessage.id)
    ))  # fmt: skip


def cancel_unsent(session: Session, practice: str, phone: str, now: datetime) -> int:
    """Cancel (reason ``erased``) the number's messages not in Twilio's hands: scheduled,
    claimed by a dispatcher that has not started sending (``sending`` without
    ``send_started_at``), and ``uncertain`` ones (Twilio may have them, but they are never looked
    up or resent after an erasure). Their leases are dropped. Returns how many."""
    not_handed_over = or_(
        OutboundMessage.status.in_([OutboxStatus.SCHEDULED.value, OutboxStatus.UNCERTAIN.value]),
        and_(OutboundMessage.status == OutboxStatus.SENDING.value,
             OutboundMessage.send_started_at.is_(None)),
    )  # fmt: skip
    return session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.practice == practice, OutboundMessage.phone == phone,
               not_handed_over)
        .values(status=OutboxStatus.CANCELLED.value, reason="erased", lease_owner=None,
                lease_expires_at=None, updated_at=now),
        execution_options=_BULK,
    ).rowcount  # fmt: skip


def anonymise_outbound(
    session: Session, practice: str, phone: str, marker: str, now: datetime
) -> int:
    """Replace the number by ``marker`` on its outbound messages and drop their bodies and
    params (the rows stay, for delivery statistics); where it only received a text as someone's
    guardian, ``sent_to`` and the body go, and the patient's own record stays theirs. Returns
    the rows changed (a row is counted once per statement that changed it)."""
    changed = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.practice == practice, OutboundMessage.phone == phone)
        .values(phone=marker, sent_to=marker, body=None, params={}, updated_at=now),
        execution_options=_BULK,
    ).rowcount
    changed += session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.practice == practice, OutboundMessage.sent_to == phone)
        .values(sent_to=marker, body=None, updated_at=now),
        execution_options=_BULK,
    ).rowcount
    return changed


def delete_inbound(session: Session, practice: str, phone: str) -> int:
    """Delete the number's inbound texts, except those a consent event cites as its proof.
    Returns how many were deleted."""
    return session.execute(
        delete(InboundMessage).where(
            InboundMessage.practice == practice,
            InboundMessage.phone == phone,
            InboundMessage.id.not_in(cited_inbound_ids()),
        ),
        execution_options=_BULK,
    ).rowcount


def delete_event_deliveries(session: Session, practice: str, phone: str) -> int:
    """Delete the events for the scheduling system that name the number, sent or not. Returns
    how many."""
    return session.execute(
        delete(EventDelivery).where(
            EventDelivery.practice == practice, EventDelivery.phone == phone
        ),
        execution_options=_BULK,
    ).rowcount


def delete_contact(session: Session, practice: str, phone: str) -> bool:
    """Delete the number's contact row (language, time zone, date of birth, guardian...), if
    there is one (through the session: flushed with the caller's transaction)."""
    contact = contacts.get(session, practice, phone)
    if contact is None:
        return False
    session.delete(contact)
    return True
