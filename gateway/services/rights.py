"""Patients' rights over the data held on their number: access and portability (export) and
erasure.

Erasure keeps only what the law needs: the consent events (the proof, for the retention period)
with the inbound texts they cite, and, for every category the number had opted out of, a
suppression entry (a keyed hash) so that it is never texted again, even after the proof itself
is purged and even if a later enqueue names it. Everything else about the number in that practice
is deleted or anonymised, and the erasure is recorded in the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.config import Practice, Settings
from gateway.core.domain import ConsentStatus
from gateway.services import consent
from gateway.store import audit, contacts, erasure, privacy, send_lock
from gateway.store.models import ConsentEvent, InboundMessage, OutboundMessage, utcnow
from gateway.store.outbox import ERASED_PREFIX
from gateway.store.privacy import phone_hash

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def export(session: Session, practice: Practice, phone: str, now: datetime) -> dict[str, Any]:
    """Everything held on one number in one practice, as one JSON-ready document."""
    contact = contacts.get(session, practice.slug, phone)
    states = consent.current(session, practice, phone, now=now)
    inbound = erasure.inbound_messages(session, practice.slug, phone)
    outbound = erasure.outbound_messages(session, practice.slug, phone)
    return {
        "exported_at": _iso(now),
        "practice": practice.slug,
        "phone": phone,
        "contact": _contact(contact),
        "consent": {
            c.value: {"status": s.status.value, "since": _iso(s.since), "source": s.source}
            for c, s in states.items()
        },  # fmt: skip
        "consent_events": [_event(e) for e in consent.history(session, practice.slug, phone)],
        "inbound_messages": [_inbound(m) for m in inbound],
        "outbound_messages": [_outbound(m) for m in outbound],
    }


def erase(
    session: Session, settings: Settings, practice: Practice, phone: str, *, actor: str,
    now: datetime | None = None,
) -> dict[str, int]:  # fmt: skip
    """Erase one number's personal data in one practice (one transaction; commits).

    Takes the number's send lock first (``gateway.store.send_lock``), as a STOP does: a send under
    way finishes before the erasure, and none starts after it. What is not yet in Twilio's hands is
    cancelled, claimed or not; what may be (``uncertain``) is never tried again.
    """
    send_lock.exclusive(session, phone)
    now = now or utcnow()
    key = settings.hash_key
    hashed = phone_hash(key, phone)
    states = consent.current(session, practice, phone, now=now)
    suppressed = 0
    for category, state in states.items():
        if state.status is ConsentStatus.OPTED_OUT and privacy.suppress(
            session, practice=practice.slug, hashed=hashed, category=category.value,
            reason="erased_after_opt_out", now=now,
        ):  # fmt: skip
            suppressed += 1

    cancelled = erasure.cancel_unsent(session, practice.slug, phone, now)
    marker = ERASED_PREFIX + hashed[:16]  # keeps delivery statistics, not the number
    anonymised = erasure.anonymise_outbound(session, practice.slug, phone, marker, now)
    deleted_inbound = erasure.delete_inbound(session, practice.slug, phone)
    erasure.delete_event_deliveries(session, practice.slug, phone)
    erasure.delete_contact(session, practice.slug, phone)
    counts = {
        "suppressed_categories": suppressed,
        "cancelled_reminders": cancelled,
        "anonymised_messages": anonymised,
        "deleted_inbound_messages": deleted_inbound,
        "kept_consent_events": len(consent.history(session, practice.slug, phone)),
    }
    audit.record(session, hash_key=key, actor=actor, action="erase", practice=practice.slug,
                 phone=phone, details=counts)  # fmt: skip
    session.commit()
    return counts


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _contact(contact: Any) -> dict[str, Any] | None:
    if contact is None:
        return None
    return {
        "language": contact.language,
        "time_zone": contact.time_zone,
        "do_not_text": contact.do_not_text,
        "alternate_phone": contact.alternate_phone,
        "date_of_birth": contact.date_of_birth.isoformat() if contact.date_of_birth else None,
        "guardian_phone": contact.guardian_phone,
        "unreachable": contact.unreachable,
        "created_at": _iso(contact.created_at),
        "updated_at": _iso(contact.updated_at),
    }


def _event(event: ConsentEvent) -> dict[str, Any]:
    return {
        "id": event.id, "category": event.category, "action": event.action,
        "source": event.source, "occurred_at": _iso(event.occurred_at),
        "recorded_at": _iso(event.recorded_at), "evidence": event.evidence,
    }  # fmt: skip


def _inbound(message: InboundMessage) -> dict[str, Any]:
    return {
        "message_sid": message.message_sid, "received_at": _iso(message.received_at),
        "to": message.sender, "body": message.body, "intent": message.intent,
        "keyword": message.keyword, "rule": message.rule, "language": message.language,
        "reply": message.reply,
        "review_status": message.review_status, "reviewed_at": _iso(message.reviewed_at),
        "reviewed_by": message.reviewed_by, "review_note": message.review_note,
    }  # fmt: skip


def _outbound(message: OutboundMessage) -> dict[str, Any]:
    return {
        "id": message.external_id, "category": message.category, "template": message.template,
        "params": message.params, "to": message.phone, "sent_to": message.sent_to,
        "from": message.sender, "body": message.body, "status": message.status,
        "reason": message.reason, "send_at": _iso(message.send_at),
        "sent_at": _iso(message.sent_at), "completed_at": _iso(message.completed_at),
        "provider_sid": message.provider_sid, "error_code": message.error_code,
        "response": message.response, "responded_at": _iso(message.responded_at),
    }  # fmt: skip
