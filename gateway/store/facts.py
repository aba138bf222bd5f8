"""The facts of send decisions, read from the database in the caller's transaction.

``gather`` reads what ``gateway.core.policy.decide`` needs to know about each message of a
claimed batch, and decides nothing: the patient's contact record and who receives the text
(``gateway.core.recipients.resolve``), the recipient's own record (unreachable, time zone,
language), the recipient's consent for the category (the consent ledger's newest events, read
by ``gateway.core.consent_rules.statuses`` with the practice's double opt-in expiry), the sends to
the recipient in the last ``policy.RECENT``, and the suppression list. What the text says
(``body_chars``, ``body_segments``, ``confirms_opt_in``) the caller fills in once it has rendered
it.

Queries for a whole batch, whatever its size: the patients' contacts (unless the caller read
them: ``contacts``); the other recipients' (guardians, alternate numbers) when there are any;
then, when anyone may receive a text, the recipients' consent events, their recent sends and the
suppression list: five at most.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gateway.config import Practice
from gateway.core import consent_rules, phone, policy, recipients, windows
from gateway.core.domain import Category, ConsentStatus, OutboxStatus
from gateway.store.models import ConsentEvent, Contact, OutboundMessage, Suppression
from gateway.store.privacy import phone_hash

if TYPE_CHECKING:
    from sqlalchemy import Row
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Gathered:
    """What ``gather`` found for one message."""

    #: the policy's facts but the text's (``body_chars``, ``body_segments``, ``confirms_opt_in``)
    facts: policy.Facts
    #: the number that receives the text (None: nobody may; ``facts.recipient_block`` says why)
    recipient: str | None
    #: the language on the recipient's contact record (None: no record, or none on it)
    recipient_language: str | None
    #: the language on the patient's contact record
    patient_language: str | None


#: (practice, number)
Key = tuple[str, str]


_CONTACTS = Contact.__table__
#: what decisions read of a contact record (rows, not ORM objects: cheaper to load)
_CONTACT_COLUMNS = [_CONTACTS.c[name] for name in (
    "practice", "phone", "language", "unreachable", "time_zone", "do_not_text", "alternate_phone",
    "date_of_birth", "guardian_phone",
)]  # fmt: skip


def contacts(session: Session, keys: Iterable[Key]) -> dict[Key, Row[Any]]:
    """The contact records of ``keys`` (one query; numbers without a record left out): rows
    of what decisions read of them, for ``numbers_in`` and ``gather``."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = session.execute(
        select(*_CONTACT_COLUMNS).where(
            _CONTACTS.c.practice.in_({p for p, _ in wanted}),
            _CONTACTS.c.phone.in_({n for _, n in wanted}),
        )
    )
    return {key: c for c in rows if (key := (c.practice, c.phone)) in wanted}


def numbers(session: Session, practice: str, number: str) -> frozenset[str]:
    """Every number a message to ``number`` may go to: itself, and the guardian's and the
    alternate number on its contact record (one query; a batch: ``contacts``, ``numbers_in``)."""
    key = (practice, number)
    return numbers_in(contacts(session, [key]), [key])[key]


def numbers_in(found: Mapping[Key, Row[Any]], keys: Iterable[Key]) -> dict[Key, frozenset[str]]:
    """``numbers`` for each of ``keys``, from their contact records (``contacts``)."""
    wanted = set(keys)
    out = {}
    for key in wanted:
        contact = found.get(key)
        extra = (contact.guardian_phone, contact.alternate_phone) if contact else ()
        out[key] = frozenset(p for p in (key[1], *extra) if p)
    return out


def gather(
    session: Session,
    messages: Sequence[OutboundMessage],
    practices: Mapping[str, Practice],
    *,
    now: datetime,
    hash_key: str,
    patients: Mapping[Key, Row[Any]] | None = None,
) -> dict[int, Gathered]:
    """The facts of each of ``messages`` at ``now`` (aware UTC), by message id, read in
    ``session``'s transaction (five queries at most, see the module's notes).

    ``practices``: the practices of the settings (every message's practice must be there);
    ``hash_key`` the key of the suppression list's hashes (``Settings.hash_key``);
    ``patients``: the patients' contact records if the caller read them already (``contacts``:
    the dispatcher does, for the numbers it locks; a contact's fields are not what the locks
    guard, consent is, and that is read here).
    """
    if patients is None:
        patients = contacts(session, {(m.practice, m.phone) for m in messages})
    # per practice: its local date, its limits (one Limits shared by its messages)
    local: dict[str, tuple[date, policy.Limits]] = {}
    for name in {m.practice for m in messages}:
        practice = practices[name]
        local[name] = (
            now.astimezone(ZoneInfo(practice.time_zone)).date(),
            policy.Limits(
                marketing_per_day=practice.marketing_per_day,
                transactional_per_day=practice.transactional_per_day,
                transactional_per_week=practice.transactional_per_week,
            ),
        )
    resolved: dict[int, tuple[recipients.Recipient, Category]] = {}
    for message in messages:
        practice = practices[message.practice]
        patient = patients.get((message.practice, message.phone))
        person = recipients.Person(
            phone=message.phone,
            date_of_birth=patient.date_of_birth if patient else None,
            guardian_phone=patient.guardian_phone if patient else None,
            alternate_phone=patient.alternate_phone if patient else None,
            do_not_text=bool(patient and patient.do_not_text),
        )
        category = Category(message.category)
        resolved[message.id] = (recipients.resolve(
            person, category, local[message.practice][0], minimum_age=practice.minimum_age,
            guardian_required_under=practice.guardian_required_under,
        ), category)  # fmt: skip
    reached = {
        (m.practice, resolved[m.id][0].phone)
        for m in messages
        if resolved[m.id][0].phone is not None
    }
    others = contacts(session, reached - patients.keys()) if reached - patients.keys() else {}
    known = {**patients, **others}
    consent = _consent(session, reached, practices, now)
    recent = _recent_sends(session, reached, now - policy.RECENT)
    suppressed = _suppressed(session, reached, hash_key)

    out = {}
    for message in messages:
        recipient, category = resolved[message.id]
        practice = practices[message.practice]
        patient = patients.get((message.practice, message.phone))
        patient_language = patient.language if patient else None
        # the message's and its practice's facts; the recipient's once someone may receive it
        common = {
            "expires_at": message.expires_at,
            "category": category,
            "has_sender": category in practice.senders,
            "recipient_block": recipient.block,
            "window": practice.windows[category],
            "limits": local[message.practice][1],
        }
        to = recipient.phone
        if to is None:
            facts = policy.Facts(consent_status=ConsentStatus.NONE, consent_allows=False, **common)
            out[message.id] = Gathered(facts, None, None, patient_language)
            continue
        key = (message.practice, to)
        target = known.get(key)
        status = consent[key][category]
        zone = target.time_zone if target else None
        facts = policy.Facts(
            consent_status=status,
            consent_allows=consent_rules.may_send_in(category, status),
            unreachable=target.unreachable if target else None,
            # the number's zones only when the contact's own is not a known one
            zones=windows.zones_for(
                zone, () if windows.is_zone(zone) else phone.time_zones(to), practice.time_zone
            ),
            recent_sends=tuple(recent.get((*key, category), ())),
            suppressed=(*key, category) in suppressed,
            **common,
        )
        out[message.id] = Gathered(facts, to, target.language if target else None,
                                   patient_language)  # fmt: skip
    return out


_EVENTS = ConsentEvent.__table__


def _consent(
    session: Session, keys: set[Key], practices: Mapping[str, Practice], now: datetime
) -> dict[Key, dict[Category, ConsentStatus]]:
    """Each number's consent status per category (one query over the ledger's deciding columns,
    newest first, read as ``consent_rules.statuses`` reads one number's)."""
    if not keys:
        return {}
    events: dict[Key, list[object]] = defaultdict(list)
    rows = session.execute(
        select(_EVENTS.c.practice, _EVENTS.c.phone, _EVENTS.c.category, _EVENTS.c.action,
               _EVENTS.c.occurred_at)
        .where(_EVENTS.c.practice.in_({p for p, _ in keys}),
               _EVENTS.c.phone.in_({n for _, n in keys}))
        .order_by(_EVENTS.c.occurred_at.desc(), _EVENTS.c.id.desc())
    )  # fmt: skip
    for row in rows:
        events[(row.practice, row.phone)].append(row)
    return {
        key: consent_rules.statuses(
            events.get(key, ()),
            tuple(Category),
            now=now,
            pending_ttl=consent_rules.pending_ttl(practices[key[0]]),
        )  # fmt: skip
        for key in keys
    }


def _recent_sends(
    session: Session, keys: set[Key], since: datetime
) -> dict[tuple[str, str, Category], list[datetime]]:
    """When messages went to each number since ``since``, by (practice, number, category),
    counting those whose request is under way or whose outcome is not known yet (one query)."""
    if not keys:
        return {}
    m = OutboundMessage
    to = (m.practice.in_({p for p, _ in keys}), m.sent_to.in_({n for _, n in keys}))
    sent = select(m.practice, m.sent_to, m.category, m.sent_at.label("at")).where(
        *to, m.sent_at >= since
    )
    in_flight = select(m.practice, m.sent_to, m.category, m.send_started_at).where(
        *to,
        m.status.in_([OutboxStatus.SENDING.value, OutboxStatus.UNCERTAIN.value]),
        m.sent_at.is_(None),
        m.send_started_at >= since,
    )
    found: dict[tuple[str, str, Category], list[datetime]] = defaultdict(list)
    for practice, number, category, at in session.execute(sent.union_all(in_flight)):
        found[(practice, number, Category(category))].append(at)
    return found


def _suppressed(session: Session, keys: set[Key], hash_key: str) -> set[tuple[str, str, Category]]:
    """(practice, number, category) of each of ``keys`` on the suppression list (one query)."""
    if not keys:
        return set()
    numbers = {phone_hash(hash_key, n): n for _, n in keys}
    rows = session.execute(
        select(Suppression.practice, Suppression.phone_hash, Suppression.category).where(
            Suppression.practice.in_({p for p, _ in keys}),
            Suppression.phone_hash.in_(numbers),
        )
    )
    return {
        (practice, numbers[hashed], Category(category))
        for practice, hashed, category in rows
        if (practice, numbers[hashed]) in keys
    }
