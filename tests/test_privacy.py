"""Privacy rights and data protection: scoped tokens, the audit log, export, erasure with the
suppression list, retention, and logs without numbers or bodies."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus, unquote

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from conftest import API_TOKEN, PATIENT, SHARED, new_sid
from gateway.core.logs import mask_numbers
from gateway.store.audit import token_fingerprint
from gateway.store.models import (
    AuditEvent,
    ConsentEvent,
    Contact,
    InboundMessage,
    OutboundMessage,
    Suppression,
)

SHARED_ONLY = "token-for-shared-only-123456"
EVERYTHING = "token-for-every-practice-1234"


def count(session, model, *where):
    value = session.scalar(select(func.count()).select_from(model).where(*where))
    session.rollback()  # end the read: on SQLite every transaction holds the write lock
    return value


@pytest.fixture
def scoped(app, database_url, make_app):
    """An app whose one token reaches only the shared practice, another every practice (on the
    database of the ``app`` fixture, which cleans it up)."""
    app = make_app(database_url, GATEWAY_API_TOKEN=f"shared:{SHARED_ONLY},{EVERYTHING}")
    client = app.test_client()

    def get(path, token, **query):
        return client.get(path, query_string=query, headers={"Authorization": f"Bearer {token}"})

    return app, get


# --- access control ----------------------------------------------------------------------


def test_a_scoped_token_reaches_its_practice(scoped):
    _, get = scoped
    assert get(f"/api/v1/contacts/{PATIENT}", SHARED_ONLY, practice="shared").status_code == 200
    # its only practice is the default
    response = get(f"/api/v1/contacts/{PATIENT}", SHARED_ONLY)
    assert (response.status_code, response.get_json()["practice"]) == (200, "shared")


@pytest.mark.parametrize(
    "path",
    [f"/api/v1/contacts/{PATIENT}", f"/api/v1/contacts/{PATIENT}/export",
     "/api/v1/reminders/appt-1", "/api/v1/reviews"],
)  # fmt: skip
def test_another_practice_answers_404_not_403_so_it_cannot_be_probed(scoped, path):
    _, get = scoped
    response = get(path, SHARED_ONLY, practice="split")
    assert response.status_code == 404
    assert get(path, SHARED_ONLY, practice="no-such-practice").get_json() == {
        "error": "no practice 'no-such-practice'"
    }
    assert response.get_json() == {"error": "no practice 'split'"}  # the same answer


def test_a_scoped_token_cannot_enqueue_for_another_practice(scoped, session):
    app, _ = scoped
    client = app.test_client()
    body = {"id": "appt-x", "to": PATIENT, "send_at": "2026-03-02T15:00:00Z",
            "template": "appointment_reminder",
            "params": {"appointment_time": "2026-03-03T15:00:00Z"}}  # fmt: skip
    headers = {"Authorization": f"Bearer {SHARED_ONLY}"}
    other = client.post("/api/v1/reminders", json={**body, "practice": "split"}, headers=headers)
    assert other.status_code == 404
    assert other.get_json() == {"error": "no practice 'split'"}
    assert count(session, OutboundMessage) == 0
    own = client.post("/api/v1/reminders", json=body, headers=headers)  # defaults to its practice
    assert (own.status_code, own.get_json()["practice"]) == (201, "shared")


def test_an_unscoped_token_reaches_every_practice(scoped):
    _, get = scoped
    for practice in ("shared", "split"):
        assert get(f"/api/v1/contacts/{PATIENT}", EVERYTHING, practice=practice).status_code == 200


def test_a_token_scoped_to_an_unknown_practice_stops_start_up(database_url, make_app):
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match="GATEWAY_API_TOKEN: a token is scoped to unknown"):
        make_app(database_url, GATEWAY_API_TOKEN=f"nowhere:{SHARED_ONLY}")


# --- the audit log -----------------------------------------------------------------------


def test_reads_and_changes_are_audited_without_the_number(api, twilio, session):
    api.contact()
    api.patch(f"/api/v1/contacts/{PATIENT}", json={"practice": "shared", "language": "es"})
    api.enqueue()
    api.reminder()
    rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    session.rollback()
    assert [r.action for r in rows] == [
        "read_contact", "update_contact", "enqueue_reminder", "read_reminder",
    ]  # fmt: skip
    for row in rows:
        assert row.actor == token_fingerprint(API_TOKEN)
        assert API_TOKEN not in row.actor
        assert row.phone_last4 == "0123"
        assert len(row.phone_hash) == 64 and PATIENT not in str(row.details)
    assert rows[1].details == {"fields": ["language"]}


def test_audit_events_are_append_only(api, session):
    api.contact()
    row = session.scalar(select(AuditEvent))
    row.action = "nothing to see"
    with pytest.raises(RuntimeError, match="append-only"):
        session.commit()
    session.rollback()


# --- export --------------------------------------------------------------------------------


def test_export_holds_everything_on_the_number(api, twilio, dispatcher):
    twilio.inbound("I'll stop by at 3")
    twilio.inbound("HELP")
    api.patch(
        f"/api/v1/contacts/{PATIENT}", json={"practice": "shared", "time_zone": "America/New_York"}
    )
    api.enqueue()
    dispatcher.run_pass()
    twilio.inbound("STOP")
    response = api.get(f"/api/v1/contacts/{PATIENT}/export", query_string={"practice": "shared"})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="export-0123.json"'
    document = response.get_json()
    assert document["phone"] == PATIENT
    assert document["contact"]["time_zone"] == "America/New_York"
    assert [m["body"] for m in document["inbound_messages"]] == [
        "I'll stop by at 3",
        "HELP",
        "STOP",
    ]
    assert [e["action"] for e in document["consent_events"]] == ["opt_out", "opt_out"]
    assert document["consent_events"][0]["evidence"]["body"] == "STOP"
    (sent,) = document["outbound_messages"]
    assert sent["status"] == "sent" and "reminder of your appointment" in sent["body"]
    assert document["consent"]["transactional"]["status"] == "opted_out"


def test_export_command_prints_the_same_document(app, twilio):
    twilio.inbound("HELP")
    result = app.test_cli_runner().invoke(args=["export", "(305) 555-0123", "--practice", "shared"])
    assert result.exit_code == 0, result.output
    assert '"body": "HELP"' in result.output


# --- erasure and the suppression list --------------------------------------------------------


def test_erasure_keeps_the_proof_and_suppresses_an_opted_out_number(
    app, api, twilio, session, dispatcher, console, clock
):
    twilio.inbound("can you move my appointment?")
    twilio.inbound("STOP", sid=new_sid())
    api.enqueue(send_at="2026-03-05T15:00:00Z", expires_at=None)
    response = api.delete(f"/api/v1/contacts/{PATIENT}", query_string={"practice": "shared"})
    assert response.status_code == 200
    counts = response.get_json()["erased"]
    assert counts == {
        "suppressed_categories": 2, "cancelled_reminders": 1, "anonymised_messages": 1,
        "deleted_inbound_messages": 1, "kept_consent_events": 2,
    }  # fmt: skip
    # gone: the contact and the reminder's number; kept: only the STOP, as consent proof
    # (bodies are encrypted at rest: compare them in Python)
    assert count(session, Contact) == 0
    assert count(session, OutboundMessage, OutboundMessage.phone == PATIENT) == 0
    bodies = [m.body for m in session.scalars(select(InboundMessage))]
    session.rollback()
    assert bodies == ["STOP"]
    assert count(session, ConsentEvent) == 2
    # a suppression entry per category, without the number
    entries = session.scalars(select(Suppression)).all()
    session.rollback()
    assert {e.category for e in entries} == {"transactional", "marketing"}
    assert all(PATIENT not in e.phone_hash for e in entries)
    # the erasure itself is on record
    assert count(session, AuditEvent, AuditEvent.action == "erase") == 1


def test_an_erased_opted_out_number_stays_suppressed_after_its_proof_is_purged(
    app, api, twilio, session, console
):
    from gateway.services.dispatch import Dispatcher

    with time_machine.travel(datetime(2026, 3, 2, 15, tzinfo=UTC), tick=False):
        twilio.inbound("STOP")
        api.delete(f"/api/v1/contacts/{PATIENT}", query_string={"practice": "shared"})
    # eight years later the consent proof has been purged by retention...
    with time_machine.travel(datetime(2034, 3, 2, 15, tzinfo=UTC), tick=False):
        result = app.test_cli_runner().invoke(args=["retention"])
        assert result.exit_code == 0, result.output
        assert count(session, ConsentEvent) == 0
        assert api.contact()["consent"]["transactional"]["status"] == "implied"
        # ...and still the number is never texted: a new enqueue is refused,
        response = api.post("/api/v1/reminders", json={
            "id": "appt-2034", "practice": "shared", "to": PATIENT,
            "send_at": "2034-03-02T15:00:00Z", "template": "appointment_reminder",
            "params": {"appointment_time": "2034-03-03T15:00:00Z"}})  # fmt: skip
        assert response.status_code == 422
        assert "never texted" in response.get_json()["errors"]["to"]
        # and one already queued before is skipped at send time
        session.add(OutboundMessage(
            practice="shared", external_id="queued-before", phone=PATIENT,
            category="transactional", template="appointment_reminder",
            params={"appointment_time": "2034-03-03T15:00:00Z"}, status="scheduled",
            send_at=datetime(2034, 3, 2, 15, tzinfo=UTC),
            next_attempt_at=datetime(2034, 3, 2, 15, tzinfo=UTC), attempts=0))  # fmt: skip
        session.commit()
        summary = Dispatcher.from_app(app).run_pass()
        assert summary.skipped == {"suppressed": 1}
        assert console.sent == []


def test_a_fresh_opt_in_after_erasure_lifts_the_suppression(app, api, twilio, session, dispatcher):
    twilio.inbound("STOP")
    api.delete(f"/api/v1/contacts/{PATIENT}", query_string={"practice": "shared"})
    twilio.inbound("START")  # the patient comes back and asks for texts again
    api.enqueue()
    assert dispatcher.run_pass().sent == 1


def test_erasing_a_number_that_never_opted_out_suppresses_nothing(api, twilio, session, dispatcher):
    twilio.inbound("HELP")
    counts = api.delete(f"/api/v1/contacts/{PATIENT}", query_string={"practice": "shared"})
    assert counts.get_json()["erased"]["suppressed_categories"] == 0
    api.enqueue()
    assert dispatcher.run_pass().sent == 1


def test_erase_command_names_the_staff_member(app, twilio, session):
    twilio.inbound("STOP")
    result = app.test_cli_runner().invoke(
        args=["erase", PATIENT, "--practice", "shared", "--staff", "privacy-officer", "--yes"]
    )
    assert result.exit_code == 0, result.output
    row = session.scalar(select(AuditEvent).where(AuditEvent.action == "erase"))
    assert row.actor == "staff:privacy-officer"
    session.rollback()


# --- retention ---------------------------------------------------------------------------------


def test_retention_purges_old_logs_and_keeps_recent_ones(app, api, twilio, session):
    with time_machine.travel(datetime(2019, 1, 10, 15, tzinfo=UTC), tick=False):
        twilio.inbound("old question", from_="+13055550999")
        twilio.inbound("HELP", from_="+13055550999")
    with time_machine.travel(datetime(2026, 3, 1, 15, tzinfo=UTC), tick=False):
        twilio.inbound("recent question")
        result = app.test_cli_runner().invoke(args=["retention"])
    assert result.exit_code == 0
    assert "shared: consent_events 0, suppressed 0, inbound_messages 2" in result.output
    assert count(session, InboundMessage) == 1  # the recent one


def test_retention_keeps_a_newer_state_and_suppresses_an_expiring_opt_out(app, twilio, session):
    with time_machine.travel(datetime(2018, 1, 10, 15, tzinfo=UTC), tick=False):
        twilio.inbound("STOP", from_="+13055550901")  # opted out, never came back
        twilio.inbound("STOP", from_="+13055550902")
    with time_machine.travel(datetime(2025, 1, 10, 15, tzinfo=UTC), tick=False):
        twilio.inbound("START", from_="+13055550902")  # came back: a newer event
    with time_machine.travel(datetime(2026, 3, 1, 15, tzinfo=UTC), tick=False):
        app.test_cli_runner().invoke(args=["retention"])
    entries = session.scalars(select(Suppression)).all()
    session.rollback()
    # 0901: both categories of the shared sender; 0902: marketing only (START restored care
    # texts, never marketing, whose opt-out is now past its proof)
    assert len(entries) == 3
    assert count(session, ConsentEvent, ConsentEvent.phone == "+13055550902") == 1  # the START


# --- logs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("/contacts/+13055550123?practice=a", "/contacts/+1******0123?practice=a"),
        ("GET /api/v1/contacts/%2B13055550123", "GET /api/v1/contacts/+1******0123"),
        ("/contacts/(305)%20555-0123", "/contacts/******0123"),
        ("call 305.555.0123 now", "call ******0123 now"),
        ("sid SM0123456789abcdef0123456789abcdef", "sid SM0123456789abcdef0123456789abcdef"),
        ("at 2026-03-02T15:00:00Z", "at 2026-03-02T15:00:00Z"),
        # what urllib.parse.quote("+1 (305) 555-0177") gives
        ("/contacts/%2B1%20%28305%29%20555-0177", "/contacts/+1******0177"),
        ("/contacts/+1%C2%A0305%C2%A0555%C2%A00177", "/contacts/+1******0177"),
        ("/contacts/13055550177x?practice=a", "/contacts/*******0177x?practice=a"),
        ("/contacts/%252B13055550177", "/contacts/+1******0177"),  # encoded twice
        ("q=%2B1+305+555+0177&practice=a", "q=+1******0177&practice=a"),
        ("/contacts/tel:+1-305-555-0177", "/contacts/tel:+1******0177"),
    ],
)  # fmt: skip
def test_numbers_are_masked_in_log_lines(line, masked):
    assert mask_numbers(line) == masked


_SEPARATORS = st.sampled_from([" ", "-", ".", "\u00a0", "", "/", "\u2009"])


@st.composite
def written_numbers(draw) -> tuple[str, str]:
    """(a NANP number's ten digits, the number as someone wrote and a client encoded it)."""
    area = draw(st.integers(2, 9)) * 100 + draw(st.integers(0, 99))
    exchange = draw(st.integers(2, 9)) * 100 + draw(st.integers(0, 99))
    line = draw(st.integers(0, 9999))
    national = f"{area:03d}{exchange:03d}{line:04d}"
    sep = draw(_SEPARATORS)
    a, e, n = national[:3], national[3:6], national[6:]
    written = draw(st.sampled_from([
        f"+1{a}{e}{n}", f"1{a}{e}{n}", f"{a}{e}{n}", f"+1 ({a}) {e}-{n}", f"({a}){sep}{e}-{n}",
        f"+1{sep}{a}{sep}{e}{sep}{n}", f"{a}{sep}{e}{sep}{n}", f"tel:+1-{a}-{e}-{n}",
        f"1 {a} {e} {n}", f"+1.{a}.{e}.{n}",
    ]))  # fmt: skip
    written += draw(st.sampled_from(["", "x", "X12", "abc", ";ext=9"]))
    encode = draw(st.sampled_from([
        lambda t: t, lambda t: quote(t), lambda t: quote(t, safe=""), quote_plus,
        lambda t: quote(quote(t, safe=""), safe=""),
        lambda t: "".join(f"%{b:02X}" for b in t.encode()),
    ]))  # fmt: skip
    return national, encode(written)


@given(written_numbers(), st.sampled_from(["/api/v1/contacts/{}?practice=shared",
                                           "GET /api/v1/contacts/{} HTTP/1.1",
                                           "to={}&practice=shared", "phone {} opted out"]))
def test_no_encoding_of_a_number_survives_masking(number, template):
    national, written = number
    line = template.format(written)
    masked = unquote(unquote(unquote(mask_numbers(line))))
    digits = re.sub(r"\D", "", masked)
    assert national[:6] not in digits, (line, masked)
    assert national[-4:] in digits  # the last four stay, to tell numbers apart


def test_no_log_line_carries_a_body_or_a_full_number(app, api, twilio, dispatcher, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "my rhinoplasty stitches hurt, call me at 305-555-0199"
    twilio.inbound(secret)
    twilio.inbound("STOP")
    twilio.inbound("START")
    api.contact()
    api.enqueue()
    dispatcher.run_pass()
    api.delete(f"/api/v1/contacts/{PATIENT}", query_string={"practice": "shared"})
    lines = [record.getMessage() for record in caplog.records]
    text = "\n".join(lines)
    assert lines
    assert "rhinoplasty" not in text and "reminder of your appointment" not in text
    for number in (PATIENT, "3055550123", "305-555-0199", SHARED):
        assert number not in text


def test_numbers_are_masked_in_records_of_every_logger(app, caplog):
    """Child loggers of ``gateway`` and other libraries' loggers too: masking is done where
    records are made, not by one logger's filter (which its children's records never meet)."""
    import logging

    with caplog.at_level(logging.INFO):
        for name in ("gateway.delivery", "gateway", "twilio.http_client", "apscheduler"):
            logging.getLogger(name).warning("to %s, body sent", "+1 (305) 555-0177")
    assert len(caplog.records) == 4
    for record in caplog.records:
        assert "555-0177" not in record.getMessage() and "0177" in record.getMessage()
