"""The retention purge's statements, one practice at a time (``gateway.services.retention``
decides the cutoffs and the order). Deletes are bulk (``synchronize_session=False``) and return
how many rows went; none commits."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.store.models import (
    AuditEvent,
    ConsentEvent,
    EventDelivery,
    InboundMessage,
    OutboundMessage,
)
from gateway.store.privacy import cited_inbound_ids

_BULK: dict[str, Any] = {"synchronize_session": False}


def consent_older_than(session: Session, practice: str, cutoff: datetime) -> list[tuple[str, str]]:
    """(phone, category) of the practice whose every consent event occurred before ``cutoff``:
    purging the events takes their consent state with them."""
    rows = session.execute(
        select(ConsentEvent.phone, ConsentEvent.category)
        .where(ConsentEvent.practice == practice)
        .group_by(ConsentEvent.phone, ConsentEvent.category)
        .having(func.max(ConsentEvent.occurred_at) < cutoff)
    )
    return [(phone, category) for phone, category in rows]


def delete_consent_events(session: Session, practice: str, before: datetime) -> int:
    """Delete the practice's consent events that occurred before ``before``."""
    return _delete(session, delete(ConsentEvent).where(
        ConsentEvent.practice == practice, ConsentEvent.occurred_at < before))  # fmt: skip


def delete_inbound(session: Session, practice: str, before: datetime) -> int:
    """Delete the practice's inbound texts received before ``before``, except those a consent
    event still cites as its proof."""
    return _delete(session, delete(InboundMessage).where(
        InboundMessage.practice == practice, InboundMessage.received_at < before,
        InboundMessage.id.not_in(cited_inbound_ids())))  # fmt: skip


def delete_outbound(
    session: Session, practice: str, before: datetime, statuses: Iterable[str]
) -> int:
    """Delete the practice's outbound messages created before ``before`` whose status is one of
    ``statuses`` (the caller names the finished ones)."""
    return _delete(session, delete(OutboundMessage).where(
        OutboundMessage.practice == practice, OutboundMessage.created_at < before,
        OutboundMessage.status.in_(list(statuses))))  # fmt: skip


def delete_audit_events(session: Session, practice: str, before: datetime) -> int:
    """Delete the practice's audit events recorded before ``before``."""
    return _delete(session, delete(AuditEvent).where(
        AuditEvent.practice == practice, AuditEvent.at < before))  # fmt: skip


def delete_event_deliveries(
    session: Session, practice: str, before: datetime, statuses: Iterable[str]
) -> int:
    """Delete the practice's events for the scheduling system created before ``before`` whose
    status is one of ``statuses`` (the settled ones: ``gateway.store.event_outbox.SETTLED``)."""
    return _delete(session, delete(EventDelivery).where(
        EventDelivery.practice == practice, EventDelivery.status.in_(list(statuses)),
        EventDelivery.created_at < before))  # fmt: skip


def _delete(session: Session, statement: Any) -> int:
    return session.execute(statement, execution_options=_BULK).rowcount
