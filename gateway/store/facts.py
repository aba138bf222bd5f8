"""The facts of a send decision, read from the database in the caller's transaction.

``gather`` reads what ``gateway.core.policy.decide`` needs to know about one due message, and
decides nothing: the patient's contact record and who receives the text
(``gateway.core.recipients.resolve``), the recipient's own record (unreachable, time zone,
language), the recipient's consent for the category (read by the consent ledger's function the
caller passes), the sends to the recipient in the last ``policy.RECENT``, and the suppression list.
What the text says (``body_chars``, ``body_segments``, ``confirms_opt_in``) the caller fills in
once it has rendered it.

Queries for one message: the patient's contact, the recipient's when another number receives it,
the consent, the recent sends, the suppression list (none but the first when nobody may receive
it). A batched form (a claimed batch in a constant number of queries) is to answer the same
``Gathered`` per message, so that the policy does not change with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gateway.config import Practice
from gateway.core import phone, policy, recipients, windows
from gateway.core.domain import Category, ConsentStatus
from gateway.store import contacts, outbox, privacy
from gateway.store.models import Contact, OutboundMessage

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class ConsentReader(Protocol):
    """The consent ledger's reading of one number's consent for one category at ``now``: its
    status, and whether that status allows texts of the category."""

    def __call__(
        self, session: Session, practice: Practice, phone: str, category: Category, now: datetime
    ) -> tuple[ConsentStatus, bool]: ...


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


def numbers(session: Session, practice: str, number: str) -> frozenset[str]:
    """Every number a message to ``number`` may go to: itself, and the guardian's and the
    alternate number on its contact record (one query)."""
    row = session.execute(
        select(Contact.guardian_phone, Contact.alternate_phone).where(
            Contact.practice == practice, Contact.phone == number
        )
    ).first()
    return frozenset(p for p in (number, *(row or ())) if p)


def gather(
    session: Session,
    message: OutboundMessage,
    practice: Practice,
    *,
    now: datetime,
    hash_key: str,
    consent_of: ConsentReader,
) -> Gathered:
    """The facts of ``message`` at ``now`` (aware UTC), read in ``session``'s transaction.

    ``practice`` is the message's practice from the settings; ``hash_key`` the key of the
    suppression list's hashes (``Settings.hash_key``).
    """
    category = message.category
    patient = contacts.get(session, message.practice, message.phone)
    today = now.astimezone(ZoneInfo(practice.time_zone)).date()
    person = recipients.Person(
        phone=message.phone,
        date_of_birth=patient.date_of_birth if patient else None,
        guardian_phone=patient.guardian_phone if patient else None,
        alternate_phone=patient.alternate_phone if patient else None,
        do_not_text=bool(patient and patient.do_not_text),
    )
    recipient = recipients.resolve(
        person, category, today, minimum_age=practice.minimum_age,
        guardian_required_under=practice.guardian_required_under,
    )  # fmt: skip
    # the message's and its practice's facts; the recipient's once someone may receive it
    facts = policy.Facts(
        expires_at=message.expires_at,
        consent_status=ConsentStatus.NONE,
        consent_allows=False,
        category=category,
        has_sender=category in practice.senders,
        recipient_block=recipient.block,
        window=practice.windows[category],
        limits=policy.Limits(
            marketing_per_day=practice.marketing_per_day,
            transactional_per_day=practice.transactional_per_day,
            transactional_per_week=practice.transactional_per_week,
        ),
    )
    patient_language = patient.language if patient else None
    if recipient.phone is None:
        return Gathered(facts, None, None, patient_language)
    to = recipient.phone
    target = patient if to == message.phone else contacts.get(session, message.practice, to)
    status, allows = consent_of(session, practice, to, category, now)
    facts = replace(
        facts,
        consent_status=status,
        consent_allows=allows,
        unreachable=target.unreachable if target else None,
        zones=windows.zones_for(
            target.time_zone if target else None, phone.time_zones(to), practice.time_zone
        ),
        recent_sends=outbox.recent_sends(
            session, message.practice, to, category.value, now - policy.RECENT
        ),
        suppressed=privacy.is_suppressed(session, hash_key, message.practice, to, category.value),
    )
    return Gathered(facts, to, target.language if target else None, patient_language)
