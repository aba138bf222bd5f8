"""A patient's answer to an appointment reminder ("C" to confirm, "R" to reschedule).

``plan`` reads: is the text an answer (``gateway.core.confirmations``), for which reminder, and the
reply. ``record`` writes the response on the reminder and its event, in the inbound message's
transaction. Called by ``gateway.services.inbound`` only for texts that are no consent or help
keyword.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gateway.config import Practice
from gateway.core import confirmations, recipients
from gateway.core.confirmations import Candidate, Response
from gateway.core.domain import Category, OutboxStatus
from gateway.services import sms_templates
from gateway.store import contacts, event_outbox, outbox
from gateway.store.models import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TEMPLATE = "appointment_reminder"
#: reminders sent longer ago than this are not looked at
LOOKBACK = timedelta(days=90)
#: at most this many recent reminders are looked at
CANDIDATES = 50
_REPLY_TEMPLATES = {
    Response.CONFIRMED: "appointment_confirmed",
    Response.RESCHEDULE_REQUESTED: "appointment_reschedule",
}
_EVENT_TYPES = {
    Response.CONFIRMED: "appointment.confirmed",
    Response.RESCHEDULE_REQUESTED: "appointment.reschedule_requested",
}
_ANSWERABLE = (OutboxStatus.SENT, OutboxStatus.DELIVERED)


@dataclass(frozen=True)
class Planned:
    """The reminder an inbound text answers, and the reply to send."""

    message_id: int
    response: Response
    appointment_time: str
    #: the response already recorded (a repeated answer changes nothing)
    previous: str | None
    reply: str


def plan(
    session: Session, practice: Practice, phone: str, body: str, now: datetime
) -> Planned | None:
    """What ``body`` from ``phone`` answers; None: it answers nothing (no invitation, not an
    answer word, or no reminder of an appointment still ahead). Reads only."""
    if not practice.confirmations:
        return None
    answer = confirmations.match(body)
    if answer is None:
        return None
    rows = outbox.sent_to_number(
        session, practice.slug, phone, category=Category.TRANSACTIONAL, template=TEMPLATE,
        statuses=_ANSWERABLE, since=now - LOOKBACK, limit=CANDIDATES,
    )  # fmt: skip
    candidates, details = [], {}
    for message_id, params, sent_at, response in rows:
        try:
            appointment_at = datetime.fromisoformat(params["appointment_time"])
        except (KeyError, TypeError, ValueError):
            continue
        candidates.append(Candidate(message_id, appointment_at, sent_at))
        details[message_id] = (params["appointment_time"], response)
    chosen = confirmations.choose(candidates, now)
    if chosen is None:
        return None
    appointment_time, previous = details[chosen.key]
    contact = contacts.get(session, practice.slug, phone)
    on_file = recipients.language_for(contact.language if contact else None, practice.language)
    language = answer.language or on_file  # the language the answer was written in comes first
    reply = sms_templates.render(
        _REPLY_TEMPLATES[answer.response], language, practice=practice,
        appointment_time=appointment_time,
    )  # fmt: skip
    return Planned(chosen.key, answer.response, appointment_time, previous, reply)


def record(session: Session, planned: Planned, at: datetime | None = None) -> None:
    """The response on the reminder and its event (flushed with the caller's transaction, not
    committed). The same answer again changes nothing; a different one replaces it."""
    if planned.previous == planned.response.value:
        return
    at = at or utcnow()
    outbox.record_response(session, planned.message_id, planned.response.value, at)
    event_outbox.emit_reminder(
        session, planned.message_id, _EVENT_TYPES[planned.response], occurred_at=at,
        appointment_time=planned.appointment_time, response=planned.response.value,
        responded_at=event_outbox.iso(at),
    )  # fmt: skip
