"""What Twilio tells us after a send: status callbacks and error codes, applied to the outbox.

Callbacks arrive late, twice, or out of order; a status never moves backwards. Error codes that
say something about the number (21610 opted out, 21211 invalid, 21614/30006 not mobile) get the
same reaction whether they come from the send request or from a callback.
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.config import Settings
from gateway.core import consent_rules
from gateway.core.carrier_errors import Reaction, reaction_to
from gateway.core.domain import Action, ConsentStatus, OutboxStatus, Source
from gateway.core.keywords import Scope
from gateway.core.phone import mask
from gateway.services import consent, metrics
from gateway.store import contacts, event_outbox, outbox
from gateway.store.models import OutboundMessage, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("gateway.delivery")  # the name operators filter on

#: Twilio's statuses in the order a message moves through them
PROVIDER_RANK = {
    "accepted": 1, "queued": 1, "scheduled": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4, "partially_delivered": 4,
    "read": 5,
}  # fmt: skip

#: final statuses that say the message never reached the phone: nothing later moves them (a
#: ``read`` or ``delivered`` after one is a callback out of its place, not news)
UNREACHED = frozenset({"failed", "undelivered", "canceled"})

#: Twilio's final statuses -> ours
FINAL = {
    "delivered": OutboxStatus.DELIVERED,
    "read": OutboxStatus.DELIVERED,
    "partially_delivered": OutboxStatus.DELIVERED,
    "undelivered": OutboxStatus.UNDELIVERED,
    "failed": OutboxStatus.FAILED,
    "canceled": OutboxStatus.FAILED,
}

#: the statuses of a message Twilio has accepted
_ACCEPTED = (
    OutboxStatus.SENT,
    OutboxStatus.UNCERTAIN,
    OutboxStatus.DELIVERED,
    OutboxStatus.UNDELIVERED,
    OutboxStatus.FAILED,
)


def moves(seen: str | None, status: str) -> bool:
    """Whether ``status`` is news after ``seen`` (pure): it is known, later in the order, and
    ``seen`` is not a final failure. Of two final statuses the first stands; ``read`` may follow
    ``delivered`` (Twilio sends it for channels with read receipts), never a failure."""
    rank = PROVIDER_RANK.get(status)
    if rank is None or seen in UNREACHED:
        return False
    return rank > PROVIDER_RANK.get(seen or "", 0)


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    STALE = "stale"
    UNKNOWN_MESSAGE = "unknown_message"
    UNKNOWN_STATUS = "unknown_status"


def apply_status(
    session: Session,
    settings: Settings,
    sid: str,
    status: str,
    error_code: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Apply one status (a callback's, or one reconciliation fetched); commits. Never moves a
    message backwards, nor out of a final failure."""
    now = now or utcnow()
    if status not in PROVIDER_RANK:
        return Outcome.UNKNOWN_STATUS
    for _ in range(5):  # optimistic: retry if a concurrent callback changed the row first
        message = outbox.by_provider_sid(session, sid)
        if message is None:
            return Outcome.UNKNOWN_MESSAGE
        seen = message.provider_status
        if not moves(seen, status):
            session.rollback()
            return Outcome.STALE
        values: dict[str, Any] = {"provider_status": status}
        if status in FINAL:
            values.update(status=FINAL[status], completed_at=now)
        if error_code is not None:
            values["error_code"] = error_code
        if outbox.set_provider_status(session, message.id, statuses=_ACCEPTED, seen=seen,
                                      **values):  # fmt: skip
            if values.get("status") not in (None, message.status):  # "read" after "delivered"
                event_outbox.reminder_moved(session, message, values["status"], now)
            if error_code is not None:
                react_to_error(session, settings, message, error_code, now)
            session.commit()
            if status in FINAL:
                metrics.DELIVERY_STATUSES.labels(
                    message.practice, FINAL[status].value, metrics.code_label(error_code)
                ).inc()
            log.info("status sid=%s %s -> %s code=%s", sid, seen, status, error_code or "-")
            return Outcome.APPLIED
        session.rollback()
    return Outcome.STALE


def react_to_error(
    session: Session, settings: Settings, message: OutboundMessage, code: int, now: datetime
) -> None:
    """Record what an error code says about the number (does not commit)."""
    reaction = reaction_to(code)
    if reaction is None or outbox.is_erased(message.phone):  # nothing kept about an erased one
        return
    kind, unreachable = reaction
    if kind is Reaction.OPT_OUT:
        practice = settings.practices.get(message.practice)
        carried = (
            practice.categories_for_sender(message.sender) if practice and message.sender else ()
        )
        categories = consent_rules.revoked(Scope.SENDER, carried)
        # a practice since removed from the file: its opt-outs are recorded all the same
        states = consent.current(session, practice, message.phone, categories) if practice else {}
        for category in categories:
            if category in states and states[category].status is ConsentStatus.OPTED_OUT:
                continue
            consent.record(
                session, practice=message.practice, phone=message.phone, category=category,
                action=Action.OPT_OUT, source=Source.CARRIER_ERROR, occurred_at=now,
                evidence={"error_code": code, "provider_sid": message.provider_sid,
                          "outbound_message_id": message.id, "sender": message.sender},
            )  # fmt: skip
        log.warning("carrier holds an opt-out for %s (error %s)", mask(message.phone), code)
    elif unreachable is not None:
        contacts.upsert(
            session, message.practice, message.phone,
            unreachable=unreachable.value, unreachable_code=code,
        )  # fmt: skip
        log.warning("%s cannot receive SMS: %s (error %s)", mask(message.phone), unreachable, code)
