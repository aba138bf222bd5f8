"""The store's inbound log and review queue, and the statements one inbound text costs.

Each inbound webhook runs inside Twilio's 15 s budget: the number of statements it issues is a
property of the design (the contact's upsert rides in the insert's statement on PostgreSQL), so
it is pinned here per kind of text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select

from conftest import PATIENT, get_database_of, new_sid, patient
from gateway.core.domain import ReviewStatus
from gateway.store import inbound_log, reviews
from gateway.store.models import Contact, InboundMessage

AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def values(sid: str, *, phone: str = PATIENT, at: datetime = AT, **overrides: Any) -> dict:
    return {
        "message_sid": sid, "practice": "shared", "phone": phone, "sender": "+17865550100",
        "body": "I'll stop by at 3", "num_media": 0, "received_at": at,
        "intent": "possible_opt_out", "language": "en", "keyword": None, "rule": "guard.test",
        "opt_out_type": None, "review_status": ReviewStatus.OPEN.value, "reply": None,
        **overrides,
    }  # fmt: skip


def count(session: Any, model: Any) -> int:
    return session.scalar(select(func.count()).select_from(model))


@contextmanager
def statements(app: Any) -> Iterator[list[str]]:
    """The statements sent to the database meanwhile."""
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engine = get_database_of(app).engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def is_postgres(app: Any) -> bool:
    return get_database_of(app).engine.dialect.name == "postgresql"


# --- the inbound log -----------------------------------------------------------------------------


def test_record_inserts_once_per_message_sid_with_its_contact(session):
    sid = new_sid()
    first = inbound_log.record(session, values(sid), {"unreachable": None, "language": "es"})
    assert isinstance(first, int)
    again = inbound_log.record(session, values(sid, body="other"), {"language": "en"})
    assert again is None
    session.commit()
    assert count(session, InboundMessage) == 1
    assert inbound_log.by_sid(session, sid).body == "I'll stop by at 3"
    (contact,) = session.scalars(select(Contact)).all()
    assert (contact.practice, contact.phone, contact.language) == ("shared", PATIENT, "es")


def test_a_known_message_sid_writes_no_contact(session):
    sid = new_sid()
    inbound_log.record(session, values(sid), {})
    session.commit()
    assert inbound_log.record(session, values(sid, phone=patient(1)), {"language": "es"}) is None
    session.commit()
    assert [c.phone for c in session.scalars(select(Contact))] == [PATIENT]


def test_by_sid_of_an_unknown_message_is_none(session):
    assert inbound_log.by_sid(session, new_sid()) is None


# --- the review queue ----------------------------------------------------------------------------


def test_pages_follow_received_at_then_id_and_the_position_of_a_resolved_item(session):
    times = [AT, AT, AT - timedelta(hours=1), AT + timedelta(hours=1)]
    ids = []
    for at in times:
        ids.append(inbound_log.record(session, values(new_sid(), at=at), {}))
    inbound_log.record(session, values(new_sid(), review_status=None), {})  # no review item
    session.commit()
    order = [ids[2], ids[0], ids[1], ids[3]]
    assert [m.id for m in reviews.open_page(session, "shared", 10)] == order
    assert [m.id for m in reviews.open_page(session, "shared", 2)] == order[:2]
    after = reviews.position(session, "shared", ids[0])
    assert after == (AT, ids[0])
    assert [m.id for m in reviews.open_page(session, "shared", 10, after)] == order[2:]
    assert reviews.open_page(session, "split", 10) == []

    assert reviews.claim(session, ids[0], ReviewStatus.DISMISSED, at=AT, staff="s", note=None)
    session.commit()
    assert reviews.position(session, "shared", ids[0]) == (AT, ids[0])  # still a cursor
    assert [m.id for m in reviews.open_page(session, "shared", 10)] == [ids[2], ids[1], ids[3]]
    assert reviews.position(session, "split", ids[0]) is None
    assert reviews.position(session, "shared", ids[-1] + 1) is None


def test_an_item_is_claimed_once(session):
    item = inbound_log.record(session, values(new_sid()), {})
    session.commit()
    assert reviews.claim(session, item, ReviewStatus.OPTED_OUT, at=AT, staff="a", note="n")
    assert not reviews.claim(session, item, ReviewStatus.DISMISSED, at=AT, staff="b", note=None)
    session.commit()
    message = reviews.fresh(session, item)
    assert (message.review_status, message.reviewed_by, message.review_note) == (
        ReviewStatus.OPTED_OUT.value, "a", "n"
    )  # fmt: skip
    assert reviews.fresh(session, item + 1) is None


def test_overdue_counts_per_practice_cutoff(session):
    for at in (AT - timedelta(hours=30), AT - timedelta(hours=2)):
        inbound_log.record(session, values(new_sid(), at=at), {})
    session.commit()
    assert reviews.overdue_counts(session, {}) == {}
    assert reviews.overdue_counts(session, {"shared": AT - timedelta(hours=24)}) == {"shared": 1}
    assert reviews.overdue_counts(session, {"shared": AT, "split": AT}) == {"shared": 2}
    assert reviews.overdue_counts(session, {"shared": AT - timedelta(days=2)}) == {}


# --- statements per inbound text -----------------------------------------------------------------


def test_a_text_that_changes_no_consent_is_one_statement_on_postgresql(app, twilio):
    single = 1 if is_postgres(app) else 2  # SQLite: the contact's upsert is a statement of its own
    for body in ("HELP", "see you tomorrow", "I'll stop by at 3"):
        with statements(app) as seen:
            assert twilio.inbound(body, from_=patient(20)).status_code == 200
        assert len(seen) == single, (body, seen)


def test_a_duplicate_delivery_is_two_statements(app, twilio):
    sid = new_sid()
    assert twilio.inbound("HELP", sid=sid).status_code == 200
    with statements(app) as seen:
        assert twilio.inbound("HELP", sid=sid).status_code == 200
    assert len(seen) == 2  # the insert that inserts nothing, and the read of the first answer
