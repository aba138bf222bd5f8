"""What the console's patient, review and audit pages show. Each function is one page's worth of
reads over one practice (the statements: ``gateway.store.console_reads``). No Flask here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.config import Practice
from gateway.core.consent_rules import ConsentState
from gateway.core.domain import Category, OutboxStatus
from gateway.services import consent
from gateway.store import console_reads, contacts
from gateway.store.models import (
    AuditEvent,
    ConsentEvent,
    Contact,
    InboundMessage,
    OutboundMessage,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

RECENT_MESSAGES = 50
AUDIT_PAGE = 100
#: reminders that have not reached their end yet
UPCOMING = (OutboxStatus.SCHEDULED.value, OutboxStatus.SENDING.value, OutboxStatus.UNCERTAIN.value)


@dataclass(frozen=True)
class Message:
    """One text on the patient's page, either way."""

    at: datetime | None
    inbound: bool
    body: str | None
    status: str
    detail: str | None
    outbound: OutboundMessage | None = None
    #: the Twilio error code of an outbound text (shown with its meaning)
    error_code: int | None = None
    #: the gateway's automatic answer to an inbound text (HELP, STOP and START confirmations)
    auto_reply: bool = False


@dataclass(frozen=True)
class PatientPage:
    phone: str
    contact: Contact | None
    consent: dict[Category, ConsentState]
    #: every consent event, newest first
    timeline: list[ConsentEvent]
    upcoming: list[OutboundMessage]
    messages: list[Message]
    open_reviews: list[InboundMessage]

    @property
    def known(self) -> bool:
        return bool(self.contact or self.timeline or self.upcoming or self.messages)


def patient_page(session: Session, practice: Practice, phone: str, now: datetime) -> PatientPage:
    """Everything the patient page shows for one number in one practice."""
    states = consent.current(session, practice, phone, now=now)
    timeline = list(reversed(consent.history(session, practice.slug, phone)))
    outbound = console_reads.recent_outbound(session, practice.slug, phone, RECENT_MESSAGES + 50)
    upcoming = sorted(
        (m for m in outbound if m.status in UPCOMING), key=lambda m: (m.next_attempt_at, m.id)
    )
    inbound = console_reads.recent_inbound(session, practice.slug, phone, RECENT_MESSAGES)
    messages = [shown for m in inbound for shown in (*_reply(m), _inbound(m))] + [
        _outbound(m) for m in outbound if m.status not in UPCOMING
    ]
    messages.sort(key=lambda m: m.at or now, reverse=True)  # stable: a reply above its text
    return PatientPage(
        phone=phone,
        contact=contacts.get(session, practice.slug, phone),
        consent=states,
        timeline=timeline,
        upcoming=upcoming,
        messages=messages[:RECENT_MESSAGES],
        open_reviews=[m for m in inbound if m.review_status == "open"],
    )


def _inbound(message: InboundMessage) -> Message:
    if message.review_status == "open":
        detail = "possible opt-out: awaiting staff review"
    elif message.review_status:
        detail = f"possible opt-out, reviewed: {message.review_status.replace('_', ' ')}"
    elif message.keyword:
        detail = f"keyword {message.keyword}"
    else:
        detail = None
    return Message(at=message.received_at, inbound=True, body=message.body, status="received",
                   detail=detail)  # fmt: skip


def _reply(message: InboundMessage) -> tuple[Message, ...]:
    """The automatic reply the gateway answered the text with (TwiML), if any."""
    if not message.reply:
        return ()
    return (Message(at=message.received_at, inbound=False, body=message.reply, status="replied",
                    detail="automatic reply to the patient's text", auto_reply=True),)  # fmt: skip


def _outbound(message: OutboundMessage) -> Message:
    # with an error code, its meaning says more than the transport's technical reason
    detail = None if message.error_code else message.reason
    return Message(
        at=message.sent_at or message.completed_at or message.updated_at, inbound=False,
        body=message.body, status=message.status, detail=detail, outbound=message,
        error_code=message.error_code,
    )  # fmt: skip


def review_item(session: Session, practice: str, inbound_id: int) -> InboundMessage | None:
    """A message that needed review (open or resolved) in the practice, or None."""
    return console_reads.review_item(session, practice, inbound_id)


@dataclass(frozen=True)
class AuditRow:
    event: AuditEvent
    #: the staff member's e-mail for ``staff:<id>`` actors
    who: str


def audit_page(
    session: Session, practice: str, *, before_id: int | None = None, limit: int = AUDIT_PAGE
) -> tuple[list[AuditRow], int | None]:
    """One page of the practice's audit log, newest first, and the cursor of the next page."""
    events = console_reads.audit_events(session, practice, before_id=before_id, limit=limit + 1)
    more = len(events) > limit
    events = events[:limit]
    ids = {staff_id for e in events if (staff_id := _staff_id(e.actor)) is not None}
    emails = console_reads.staff_emails(session, ids)
    rows = [AuditRow(e, _who(e.actor, emails)) for e in events]
    return rows, (events[-1].id if more else None)


def _who(actor: str, emails: dict[int, str]) -> str:
    staff_id = _staff_id(actor)
    return emails.get(staff_id, actor) if staff_id is not None else actor


def _staff_id(actor: str) -> int | None:
    kind, _, value = actor.partition(":")
    return int(value) if kind == "staff" and value.isdigit() else None
