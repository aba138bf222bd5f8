"""Who receives a message meant for a patient: the patient, a guardian, or a designated number.

Pure. The rules (HIPAA 164.522(b) confidential communications, 164.502(g) personal
representatives; no marketing to minors):

- a patient under the practice's minimum age is not texted at all;
- marketing never goes to a minor (under 18);
- a minor's care messages (under the practice's ``guardian_required_under``) go to the guardian's
  number, under the guardian's consent; without a guardian on file they are not sent;
- an alternate number the patient designated replaces theirs;
- a do-not-text request with no alternate number stops every text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from gateway.core.domain import Category, SkipReason

ADULT_AGE = 18


@dataclass(frozen=True)
class Person:
    """What the contact record says about the patient."""

    phone: str
    date_of_birth: date | None = None
    guardian_phone: str | None = None
    alternate_phone: str | None = None
    do_not_text: bool = False


@dataclass(frozen=True)
class Recipient:
    phone: str | None
    #: why nobody may receive it (None when ``phone`` is set)
    block: SkipReason | None = None
    #: "patient", "guardian" or "alternate"
    role: str = "patient"


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def resolve(
    person: Person,
    category: Category,
    today: date,
    *,
    minimum_age: int | None,
    guardian_required_under: int,
) -> Recipient:
    age = age_on(person.date_of_birth, today) if person.date_of_birth else None
    if age is not None and minimum_age is not None and age < minimum_age:
        return Recipient(None, SkipReason.UNDER_MINIMUM_AGE)
    if age is not None and age < ADULT_AGE and category is Category.MARKETING:
        return Recipient(None, SkipReason.MINOR)
    if age is not None and age < guardian_required_under:
        if not person.guardian_phone:
            return Recipient(None, SkipReason.NO_GUARDIAN)
        return Recipient(person.guardian_phone, role="guardian")
    if person.alternate_phone:
        return Recipient(person.alternate_phone, role="alternate")
    if person.do_not_text:
        return Recipient(None, SkipReason.DO_NOT_TEXT)
    return Recipient(person.phone)


def language_for(recipient_language: str | None, practice_language: str) -> str:
    """The language a text to this recipient is written in: the contact's own (``"en"``,
    ``"es"``) when the contact record has one, else the practice's default."""
    return recipient_language or practice_language
