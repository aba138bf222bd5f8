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
from typing import TYPE_CHECKING

from gateway.config import Practice, Settings
from gateway.core.domain import ConsentStatus, OutboxStatus
from gateway.services import consent
from gateway.store import audit, event_outbox, privacy
from gateway.store import purge as store_purge
from gateway.store.models import utcnow
from gateway.store.privacy import phone_hash

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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
    stale = store_purge.consent_older_than(session, slug, proof_cutoff)
    suppressed = 0
    for phone, category in stale:
        state = consent.current(session, practice, phone, (category,), now=now)[category]
        if state.status is not ConsentStatus.OPTED_OUT:
            continue
        if privacy.suppress(session, practice=slug, hashed=phone_hash(settings.hash_key, phone),
                            category=category.value, reason="retention_after_opt_out",
                            now=now):  # fmt: skip
            suppressed += 1
    session.flush()
    # Deleting old events under newer ones changes no state: the newest decides.
    events = store_purge.delete_consent_events(session, slug, proof_cutoff)

    # 2. SMS logs past their time (an inbound text cited by a kept consent event stays)
    inbound = store_purge.delete_inbound(session, slug, logs_cutoff)
    outbound = store_purge.delete_outbound(session, slug, logs_cutoff, _FINISHED)

    # 3. the audit log keeps as long as the consent proof
    audits = store_purge.delete_audit_events(session, slug, proof_cutoff)

    # 4. events for the scheduling system, delivered or given up: kept a while for inspection
    settled = store_purge.delete_event_deliveries(
        session, slug, now - event_outbox.KEEP_SETTLED, event_outbox.SETTLED
    )

    counts = {"consent_events": events, "suppressed": suppressed, "inbound_messages": inbound,
              "outbound_messages": outbound, "audit_events": audits,
              "event_deliveries": settled}  # fmt: skip
    if any(counts.values()):
        audit.record(session, hash_key=settings.hash_key, actor="system:retention",
                     action="retention", practice=slug, details=counts)  # fmt: skip
    session.commit()
    return counts

