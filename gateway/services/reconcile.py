"""Reconciliation: ask Twilio about messages whose outcome the gateway does not know.

- ``sent`` with no final status after ``reconcile_after`` (the status callback was lost, or came
  before the dispatcher had recorded the message's SID): fetch the message and apply its status
  as a callback would; look again later, less and less often, for up to ``GIVE_UP_AFTER``.
- ``uncertain`` (the dispatcher died during the request, or no answer came): look for it in
  Twilio's list of messages to the number. Found: it is ``sent`` with Twilio's SID. Not found once
  ``SETTLE`` has passed since the request: Twilio never took it, so it goes back to the outbox and
  the policy decides again (a STOP since then still wins). Nothing is resent blind.

Each message is its own short transaction with guarded updates, so any number of scheduler
processes may reconcile at once.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gateway.config import Settings
from gateway.core.domain import OutboxStatus
from gateway.services import delivery
from gateway.services.transport import LookupUnsupported, SendError, Transport
from gateway.store import event_outbox, outbox
from gateway.store.db import Database, DatabaseUnavailable
from gateway.store.models import OutboundMessage, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("gateway.reconcile")  # the name operators filter on

#: when to first look for a message whose request got no answer
FIRST_LOOK = timedelta(seconds=30)
#: how long after a lost request Twilio's message list is trusted to show it if it exists
SETTLE = timedelta(minutes=2)
#: stop asking about a sent message this long after it was sent
GIVE_UP_AFTER = timedelta(days=3)
#: when Twilio cannot be asked, ask again after
UNREACHABLE_RETRY = timedelta(minutes=5)
BATCH = 200


def due(session: Session, now: datetime, limit: int = BATCH) -> list[OutboundMessage]:
    """Messages to look up now, oldest first: ``sent`` within ``GIVE_UP_AFTER``, or
    ``uncertain``, once their ``next_attempt_at`` has come (``outbox.due_for_lookup``)."""
    return outbox.due_for_lookup(session, now, sent_since=now - GIVE_UP_AFTER, limit=limit)


def run(
    database: Database, settings: Settings, transport: Transport, now: datetime | None = None
) -> Counter[str]:
    """One reconciliation pass; returns counts of what happened."""
    now = now or utcnow()
    counts: Counter[str] = Counter()
    with database.sessions() as session:
        messages = due(session, now)
    for message in messages:
        try:
            counts[_one(database, settings, transport, message, now)] += 1
        except DatabaseUnavailable:  # the database is away: the scheduler waits for it
            raise
        except Exception:  # one message's trouble must not stop the others
            log.exception("reconcile message %s failed; looked at again later", message.id)
            counts["failed"] += 1
            _postpone(database, message, now + UNREACHABLE_RETRY)
    if messages:
        log.info("reconciliation: %s", dict(counts))
    return counts


def _one(
    database: Database, settings: Settings, transport: Transport, message: OutboundMessage,
    now: datetime,
) -> str:  # fmt: skip
    """Reconcile one message in its own session; returns what happened."""
    with database.sessions() as session:
        try:
            if message.status == OutboxStatus.SENT.value:
                return _check_sent(session, settings, transport, message, now)
            return _find_uncertain(session, settings, transport, message, now)
        except LookupUnsupported:
            _later(session, message, now + timedelta(days=1),
                   reason="this transport cannot look messages up")  # fmt: skip
            return "unsupported"
        except SendError as exc:
            _later(session, message, now + UNREACHABLE_RETRY)
            log.warning("reconcile message %s: %s", message.id, exc)
            return "unreachable"


def _postpone(database: Database, message: OutboundMessage, when: datetime) -> None:
    """Look at a message that failed to reconcile again later, so that it does not come first
    in every pass (best effort: the database may be what failed)."""
    try:
        with database.sessions() as session:
            _later(session, message, when)
    except Exception:
        log.warning("reconcile message %s: could not postpone it", message.id)


def _check_sent(
    session: Session, settings: Settings, transport: Transport, message: OutboundMessage,
    now: datetime,
) -> str:  # fmt: skip
    assert message.provider_sid is not None
    found = transport.fetch(message.provider_sid)
    delivery.apply_status(session, settings, found.sid, found.status, found.error_code, now)
    if found.status in delivery.FINAL:
        return "completed"
    waited = now - (message.sent_at or now)
    _later(session, message, now + max(waited, timedelta(minutes=15)))
    return "still_pending"


def _find_uncertain(
    session: Session, settings: Settings, transport: Transport, message: OutboundMessage,
    now: datetime,
) -> str:  # fmt: skip
    started = message.send_started_at or message.updated_at
    if outbox.is_erased(message.phone):  # nothing to look it up by, and never resent
        moved = outbox.transition(session, message.id, OutboxStatus.UNCERTAIN,
                                  status=OutboxStatus.CANCELLED, reason="erased")  # fmt: skip
        session.commit()
        return "cancelled" if moved else "changed"
    if message.body is None or message.sender is None:  # never got as far as a request
        return _requeue(session, message, now, "no request was made")
    to = message.sent_to or message.phone
    known = outbox.provider_sids_for(session, to)  # whichever practice sent them
    session.rollback()  # no transaction held while Twilio answers
    found = transport.find(to, message.body, started, exclude=frozenset(known))
    if found is None:
        if now - started < SETTLE:
            _later(session, message, started + SETTLE)
            return "waiting"
        return _requeue(session, message, now, "Twilio has no such message")
    moved = outbox.transition(
        session, message.id, OutboxStatus.UNCERTAIN, status=OutboxStatus.SENT,
        provider_sid=found.sid, provider_status=None, sent_at=started, reason=None,
        next_attempt_at=now + timedelta(seconds=settings.reconcile_after),
    )  # fmt: skip
    if moved:
        event_outbox.reminder_moved(session, message, OutboxStatus.SENT, now)
    session.commit()
    if not moved:
        return "changed"
    delivery.apply_status(session, settings, found.sid, found.status, found.error_code, now)
    log.info("message %s was sent after all (found at Twilio)", message.id)
    return "found"


def _requeue(session: Session, message: OutboundMessage, now: datetime, why: str) -> str:
    moved = outbox.transition(
        session, message.id, OutboxStatus.UNCERTAIN, status=OutboxStatus.SCHEDULED,
        next_attempt_at=now, send_started_at=None, reason=f"{why}: to be decided again",
    )  # fmt: skip
    session.commit()
    return "requeued" if moved else "changed"


def _later(
    session: Session, message: OutboundMessage, when: datetime, reason: str | None = None
) -> None:
    values = {"next_attempt_at": when} if reason is None else {"next_attempt_at": when,
                                                                "reason": reason}  # fmt: skip
    outbox.transition(session, message.id, message.status, **values)
    session.commit()
