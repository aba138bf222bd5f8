"""What the store gathers for a send decision (``gateway.store.facts``), on each database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from gateway.core import policy
from gateway.core.domain import Category, ConsentStatus, SkipReason, Unreachable
from gateway.store import facts
from gateway.store.models import ConsentEvent, Contact, OutboundMessage, Suppression
from gateway.store.privacy import phone_hash

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
PATIENT = "+13055550123"
GUARDIAN = "+13125550999"
ALTERNATE = "+13055550777"


def consent(session, phone: str, action: str, category: str = "transactional") -> None:
    """A consent event in the ledger (what the reader of facts reads)."""
    session.add(ConsentEvent(practice="shared", phone=phone, category=category, action=action,
                             source="api", occurred_at=NOW - timedelta(days=1),
                             recorded_at=NOW - timedelta(days=1), evidence={}))  # fmt: skip


def due(
    practice: str = "shared", category: str = "transactional", expires_at: datetime | None = None
) -> OutboundMessage:
    return OutboundMessage(id=1, practice=practice, phone=PATIENT, category=category,
                           template="appointment_reminder", expires_at=expires_at)  # fmt: skip


def sent(session, to: str, at: datetime, category: str = "transactional") -> None:
    session.add(OutboundMessage(
        practice="shared", phone=to, category=category, template="appointment_reminder",
        params={}, send_at=at, next_attempt_at=at, status="sent", sent_to=to, sent_at=at,
    ))  # fmt: skip


def gather(app, session, message):
    settings = app.extensions["gateway.settings"]
    found = facts.gather(session, [message], settings.practices, now=NOW,
                         hash_key=settings.hash_key)  # fmt: skip
    return found[message.id]


def test_a_number_the_practice_knows_nothing_about(app, session):
    found = gather(app, session, due(expires_at=NOW + timedelta(hours=6)))
    assert found.recipient == PATIENT
    assert (found.recipient_language, found.patient_language) == (None, None)
    assert found.facts == policy.Facts(
        expires_at=NOW + timedelta(hours=6), consent_status=ConsentStatus.IMPLIED,
        consent_allows=True, category=Category.TRANSACTIONAL, has_sender=True,
        window=(time(8), time(20)), zones=("America/New_York",), limits=policy.Limits(),
    )  # fmt: skip


def test_a_minors_text_goes_to_the_guardian_with_the_guardians_record(app, session):
    session.add_all([
        Contact(practice="shared", phone=PATIENT, language="es", date_of_birth=date(2010, 6, 1),
                guardian_phone=GUARDIAN),
        Contact(practice="shared", phone=GUARDIAN, time_zone="America/Denver",
                unreachable="not_mobile"),
    ])  # fmt: skip
    consent(session, GUARDIAN, "opt_in")
    consent(session, PATIENT, "opt_out")  # the patient's own consent is not the recipient's
    session.commit()
    found = gather(app, session, due())
    assert found.recipient == GUARDIAN
    assert (found.recipient_language, found.patient_language) == (None, "es")
    assert found.facts.consent_status is ConsentStatus.OPTED_IN
    assert found.facts.consent_allows
    assert found.facts.unreachable is Unreachable.NOT_MOBILE
    assert found.facts.zones == ("America/Denver",)  # the record's zone wins over the number's
    assert facts.numbers(session, "shared", PATIENT) == {PATIENT, GUARDIAN}


def test_nobody_may_receive_it_and_no_consent_is_read(app, session):
    session.add(Contact(practice="split", phone=PATIENT, date_of_birth=date(2010, 6, 1),
                        guardian_phone=GUARDIAN, language="es"))  # fmt: skip
    session.commit()
    found = gather(app, session, due("split"))
    assert found.recipient is None
    assert found.facts.recipient_block is SkipReason.UNDER_MINIMUM_AGE
    assert (found.facts.consent_status, found.facts.consent_allows) == (ConsentStatus.NONE, False)
    assert (found.recipient_language, found.patient_language) == (None, "es")
    assert policy.decide(found.facts, NOW) == policy.Skip(SkipReason.UNDER_MINIMUM_AGE)


def test_an_alternate_number_replaces_the_patients(app, session):
    session.add(Contact(practice="shared", phone=PATIENT, do_not_text=True,
                        alternate_phone=ALTERNATE))  # fmt: skip
    session.commit()
    assert gather(app, session, due()).recipient == ALTERNATE
    assert facts.numbers(session, "shared", PATIENT) == {PATIENT, ALTERNATE}
    assert facts.numbers(session, "shared", ALTERNATE) == {ALTERNATE}


@pytest.mark.parametrize("category", ["transactional", "marketing"])
def test_recent_sends_and_the_suppression_list_of_the_category(app, session, category):
    settings = app.extensions["gateway.settings"]
    sent(session, PATIENT, NOW - timedelta(days=2))
    sent(session, PATIENT, NOW - timedelta(days=8))  # older than any cap's period
    sent(session, PATIENT, NOW - timedelta(hours=3), category="marketing")
    sent(session, GUARDIAN, NOW - timedelta(hours=1))  # another number
    session.add(Suppression(practice="shared", phone_hash=phone_hash(settings.hash_key, PATIENT),
                            category="transactional", reason="erased_after_opt_out"))  # fmt: skip
    session.commit()
    found = gather(app, session, due(category=category))
    if category == "transactional":
        assert found.facts.recent_sends == (NOW - timedelta(days=2),)
        assert found.facts.suppressed
    else:
        assert found.facts.recent_sends == (NOW - timedelta(hours=3),)
        assert not found.facts.suppressed
    assert found.facts.category is Category(category)
