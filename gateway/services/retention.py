"""Retention: purge what each practice keeps no longer (a scheduler job, daily, and a command).

Per practice (``[practices.x.retention]``):
- SMS logs (inbound and outbound messages) older than ``sms_logs_years`` are deleted, except an
  inbound text that is still the proof of a consent event;
- consent events older than ``consent_proof_years`` are deleted; when the newest event of a
  category is an opt-out, a suppression entry (a keyed hash) is written first, so the number is
  never texted again in that category once its proof is gone;
- audit events older than ``consent_proof_years`` are deleted;
- events for the scheduling system, once delivered or failed, are deleted after 30 days.
The suppression list is kept forever.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.config import Practice, Settings
from gateway.core.domain import Category, ConsentStatus, OutboxStatus
from gateway.services import consent
from gateway.store import audit, event_outbox
from gateway.store.models import (
    AuditEvent,
    ConsentEvent,
    EventDelivery,
    InboundMessage,
    OutboundMessage,
    Suppression,
    utcnow,
)
from gateway.store.privacy import phone_hash

_FINISHED = [s.value for s in (OutboxStatus.DELIVERED, OutboxStatus.UNDELIVERED,
                               OutboxStatus.FAILED, OutboxStatus.SKIPPED,
                               OutboxStatus.CANCELLED, OutboxStatus.SENT)]  # fmt: skip


def years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year - years, day=28)


def purge(
    session: Session, settings: Settings, practice: Practice, now: datetime | None = None
) -> dict[str, int]:
    """Apply one practice's retention (one transaction; commits). Returns counts."""
    now = now or utcnow()
    logs_cutoff = years_before(now, practice.sms_log_retention_years)
    proof_cutoff = years_before(now, practice.consent_proof_retention_years)
    slug = practice.slug

    # 1. consent proof past its time. A (number, category) whose every event is that old loses
    #    its state with them: if that state is an opt-out, suppress it first.
    stale = session.execute(
        select(ConsentEvent.phone, ConsentEvent.category)
        .where(ConsentEvent.practice == slug)
        .group_by(ConsentEvent.phone, ConsentEvent.category)
        .having(func.max(ConsentEvent.occurred_at) < proof_cutoff)
    ).all()
    suppressed = 0
    for phone, category_name in stale:
        category = Category(category_name)
        state = consent.current(session, slug, phone, (category,), now=now,
                                pending_ttl=consent.pending_ttl(practice))[category]  # fmt: skip
        if state.status is not ConsentStatus.OPTED_OUT:
            continue
        hashed = phone_hash(settings.hash_key, phone)
        exists = session.scalar(select(Suppression.id).where(
            Suppression.practice == slug, Suppression.phone_hash == hashed,
            Suppression.category == category.value))  # fmt: skip
        if exists is None:
            session.add(Suppression(practice=slug, phone_hash=hashed, category=category.value,
                                    reason="retention_after_opt_out", created_at=now))  # fmt: skip
            suppressed += 1
    session.flush()
    # Deleting old events under newer ones changes no state: the newest decides.
    events = _delete(session, delete(ConsentEvent).where(
        ConsentEvent.practice == slug, ConsentEvent.occurred_at < proof_cutoff))  # fmt: skip

    # 2. SMS logs past their time (an inbound text cited by a kept consent event stays)
    cited = select(ConsentEvent.inbound_message_id).where(
        ConsentEvent.inbound_message_id.is_not(None)
    )
    inbound = _delete(session, delete(InboundMessage).where(
        InboundMessage.practice == slug, InboundMessage.received_at < logs_cutoff,
        InboundMessage.id.not_in(cited)))  # fmt: skip
    outbound = _delete(session, delete(OutboundMessage).where(
        OutboundMessage.practice == slug, OutboundMessage.created_at < logs_cutoff,
        OutboundMessage.status.in_(_FINISHED)))  # fmt: skip

    # 3. the audit log keeps as long as the consent proof
    audits = _delete(session, delete(AuditEvent).where(
        AuditEvent.practice == slug, AuditEvent.at < proof_cutoff))  # fmt: skip

    # 4. events for the scheduling system, delivered or given up: kept a while for inspection
    settled = _delete(session, delete(EventDelivery).where(
        EventDelivery.practice == slug, EventDelivery.status.in_(event_outbox.SETTLED),
        EventDelivery.created_at < now - event_outbox.KEEP_SETTLED))  # fmt: skip

    counts = {"consent_events": events, "suppressed": suppressed, "inbound_messages": inbound,
              "outbound_messages": outbound, "audit_events": audits,
              "event_deliveries": settled}  # fmt: skip
    if any(counts.values()):
        audit.record(session, hash_key=settings.hash_key, actor="system:retention",
                     action="retention", practice=slug, details=counts)  # fmt: skip
    session.commit()
    return counts


def _delete(session: Session, statement: object) -> int:
    return session.execute(statement, execution_options={"synchronize_session": False}).rowcount
