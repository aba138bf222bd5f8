"""Consent changes and the current consent of a number: the ledger's events
(``gateway.store.ledger``) under the consent rules (``gateway.core.consent_rules``).

``record`` appends an event and does what follows from it in the same transaction: it waits for a
send under way, lets the outbox reconsider held reminders, emits ``consent.changed`` and counts
it. The reads apply the one state rule (the newest event that stands; see ``consent_rules``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.core import consent_rules
from gateway.core.consent_rules import ConsentState
from gateway.core.domain import Action, Category, ConsentStatus, Source
from gateway.services import metrics
from gateway.store import event_outbox, ledger, outbox, send_lock
from gateway.store.models import ConsentEvent, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from gateway.config import Practice

__all__ = ["current", "ever_opted_in", "history", "may_send", "record", "statuses"]


def record(
    session: Session,
    *,
    practice: str,
    phone: str,
    category: Category,
    action: Action,
    source: Source,
    occurred_at: datetime | None = None,
    evidence: Mapping[str, Any] | None = None,
    inbound_message_id: int | None = None,
) -> ConsentEvent:
    """Append one event (flushed, not committed: the caller owns the transaction).

    Waits first for any send to ``phone`` under way (see ``gateway.store.send_lock``), so that no
    text starts after this event commits.
    """
    send_lock.exclusive(session, phone)
    tracked = event_outbox.enabled(session, practice)
    before = _status(session, practice, phone, category) if tracked else None
    now = utcnow()
    event = ledger.append(
        session, practice=practice, phone=phone, category=category, action=action,
        source=source, occurred_at=occurred_at or now, recorded_at=now, evidence=evidence or {},
        inbound_message_id=inbound_message_id,
    )  # fmt: skip
    # express consent given: reminders the exemption's caps held back are decided again now
    outbox.reconsider_after_consent(session, practice, phone, category, action, now)
    if before is not None:
        after = _status(session, practice, phone, category)
        if after is not before:  # an older event recorded late changes nothing
            event_outbox.emit(
                session, practice, "consent.changed",
                {"practice": practice, "phone": phone, "category": category.value,
                 "status": after.value, "previous_status": before.value,
                 "source": source.value, "occurred_at": event_outbox.iso(event.occurred_at)},
                occurred_at=event.occurred_at, phone=phone,
            )  # fmt: skip
    metrics.count_on_commit(session, metrics.CONSENT_CHANGES, practice, category.value,
                            action.value, source.value)  # fmt: skip
    return event


def _status(session: Session, practice: str, phone: str, category: Category) -> ConsentStatus:
    """The status a ``consent.changed`` event reports, before and after an append. ``record`` is
    given the practice's slug, not its settings, so here a double opt-in request lapses after
    the default expiry (``consent_rules.DEFAULT_PENDING_TTL``)."""
    return consent_rules.statuses(
        ledger.newest_actions(session, practice, phone, (category,)), (category,),
        now=utcnow(), pending_ttl=consent_rules.DEFAULT_PENDING_TTL,
    )[category]  # fmt: skip


def current(
    session: Session,
    practice: Practice,
    phone: str,
    categories: Iterable[Category] = tuple(Category),
    *,
    now: datetime | None = None,
) -> dict[Category, ConsentState[ConsentEvent]]:
    """The current state of each category for one number, with the event that set it, in one
    query (``consent_rules.states``: a double opt-in request unanswered for the practice's
    ``double_opt_in_hours`` has lapsed and is passed over)."""
    wanted = tuple(categories)
    return consent_rules.states(
        ledger.newest_first(session, practice.slug, phone, wanted), wanted,
        now=now or utcnow(), pending_ttl=consent_rules.pending_ttl(practice),
    )  # fmt: skip


def statuses(
    session: Session,
    practice: Practice,
    phone: str,
    categories: Iterable[Category],
    *,
    now: datetime | None = None,
) -> dict[Category, ConsentStatus]:
    """The current status of each category, as ``current`` derives it with the practice's double
    opt-in expiry, reading only the columns that decide it (not the events' encrypted
    evidence)."""
    wanted = tuple(categories)
    return consent_rules.statuses(
        ledger.newest_actions(session, practice.slug, phone, wanted), wanted,
        now=now or utcnow(), pending_ttl=consent_rules.pending_ttl(practice),
    )  # fmt: skip


def may_send(session: Session, practice: Practice, phone: str, category: Category) -> bool:
    """Whether consent allows a message of ``category`` to this number right now."""
    return current(session, practice, phone, (category,))[category].allows_sending


def ever_opted_in(session: Session, practice: str, phone: str, category: Category) -> bool:
    """Whether the number ever gave express consent (an ``opt_in`` event) to ``category``."""
    return ledger.ever_opted_in(session, practice, phone, category)


def history(session: Session, practice: str, phone: str) -> list[ConsentEvent]:
    """Every event for the number, oldest first (the proof a lawyer asks for)."""
    return ledger.history(session, practice, phone)
