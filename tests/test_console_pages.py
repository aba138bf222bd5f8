"""The staff console's pages: find a patient, the patient page (consent, timeline with evidence,
messages, upcoming reminders and why they wait), consent changes taken outside SMS (effective for
the next dispatch pass), the review queue, the dashboard and the audit log. Bad input is a clear
error and writes nothing. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from console_support import EMAIL, create_staff, csrf_of, post_form, sign_in, text_of
from sqlalchemy import func, select

from conftest import PATIENT, SHARED, SPLIT_TRANSACTIONAL, get_database_of, patient
from gateway.core.logs import mask_numbers
from gateway.store.models import AuditEvent, ConsentEvent, InboundMessage, OutboundMessage
from gateway.web.console import stats

PATIENT_PAGE = f"/console/shared/patients/{PATIENT}"
CONSENT_PAGE = PATIENT_PAGE + "/consent"
OPT_IN_BY_PHONE = {"category": "transactional", "action": "opt_in", "channel": "phone",
                   "note": "Called the front desk: wants reminders again."}  # fmt: skip


@pytest.fixture(autouse=True)
def at_the_dispatchers_time(clock):
    """Requests stamp times with the real clock; hold it at the dispatcher's (10:00 in Miami)."""
    with time_machine.travel(clock.now, tick=False):
        yield


@pytest.fixture
def staff_id(app, client):
    account = create_staff(app, practices=("shared", "split"))
    assert sign_in(client).status_code == 303
    return account


def rows(app, model, *conditions):
    with get_database_of(app).sessions() as session:
        return list(session.scalars(select(model).where(*conditions).order_by(model.id)))


def count(app, model, *conditions) -> int:
    with get_database_of(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*conditions))


# --- find a patient ---------------------------------------------------------------------------


def find(client, **form):
    return post_form(client, "/console/find", form, token_from="/console/")


@pytest.mark.parametrize(
    "typed", ["(305) 555-0123", "305.555.0123", "+1 305 555 0123", "3055550123"]
)
def test_a_number_in_any_format_finds_the_patient(client, staff_id, typed):
    response = find(client, practice="shared", phone=typed)
    assert response.status_code == 303
    assert response.headers["Location"] in (PATIENT_PAGE, PATIENT_PAGE.replace("+", "%2B"))
    assert "5550123" not in mask_numbers(response.headers["Location"])  # as access logs show it
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "Patient +1 305-555-0123" in text_of(page)


def test_a_number_typed_in_the_address_leads_to_its_canonical_page(client, staff_id):
    response = client.get("/console/shared/patients/(305) 555-0123")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/patients/%2B13055550123") or response.headers[
        "Location"
    ].endswith("/patients/+13055550123")


@pytest.mark.parametrize("typed", ["12345", "call me", ""])
def test_what_is_not_a_number_is_a_clear_error_and_reads_nothing(app, client, staff_id, typed):
    response = find(client, practice="shared", phone=typed)
    assert response.status_code == 422
    assert "There is a problem" in text_of(response)
    assert "Phone number:" in text_of(response)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert count(app, AuditEvent, AuditEvent.action == "read_contact") == 0


def test_a_bad_number_in_the_address_is_422(app, client, staff_id):
    response = client.get("/console/shared/patients/not-a-number")
    assert response.status_code == 422
    assert "Not a phone number" in text_of(response)


def test_several_practices_need_one_chosen(client, staff_id):
    response = find(client, phone="3055550123")
    assert response.status_code == 422
    assert "Choose a practice." in text_of(response)


# --- the patient page ---------------------------------------------------------------------------


def test_an_unknown_number_has_implied_care_consent(app, client, staff_id):
    page = text_of(client.get(PATIENT_PAGE))
    assert "No texts, reminders or consent events for this number" in page
    assert "Care messages Implied (gave the number for care)" in page
    assert "Offers (marketing) None" in page


def test_a_stop_shows_in_the_timeline_with_its_evidence(app, client, twilio, staff_id):
    twilio.inbound("STOP")
    response = client.get(PATIENT_PAGE)
    assert response.status_code == 200
    page = text_of(response)
    assert "Care messages Opted out" in page and "Offers (marketing) Opted out" in page
    timeline = page[page.index("Consent timeline"):]
    assert "Opt-out · Care messages" in timeline and "Opt-out · Offers (marketing)" in timeline
    assert "Text from the patient" in timeline
    assert "Text STOP Keyword STOP Practice number texted +1 786-555-0100 Message SID SM" in (
        timeline
    )
    messages = page[page.index("Recent messages"):page.index("Consent timeline")]
    assert "From the patient STOP received keyword STOP" in messages
    # the staff member's read is in the audit log, under their name
    (read,) = rows(app, AuditEvent, AuditEvent.action == "read_contact")
    assert read.actor == f"staff:{staff_id}"
    assert read.phone_last4 == "0123"


def test_what_patients_write_is_shown_as_text_never_as_markup(client, twilio, staff_id):
    twilio.inbound('<script>alert("x")</script> stop <b>texting</b> by 3?')
    html = client.get(PATIENT_PAGE).get_data(as_text=True)
    assert "<script>" not in html and "<b>texting</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; stop &lt;b&gt;texting" in html


def test_recording_an_opt_in_taken_by_phone_holds_for_the_next_pass(
    app, client, twilio, api, dispatcher, console, staff_id
):
    twilio.inbound("STOP")
    api.enqueue()
    response = post_form(client, CONSENT_PAGE, OPT_IN_BY_PHONE)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/patients/%2B13055550123") or response.headers[
        "Location"
    ].endswith(PATIENT_PAGE)
    page = text_of(client.get(PATIENT_PAGE))
    assert "Recorded: Opt-in for care messages (phone call)." in page
    assert "Care messages Opted in" in page
    assert "Its time has not come" in page or "Upcoming reminders" in page

    event = rows(app, ConsentEvent)[-1]
    assert (event.category, event.action, event.source) == ("transactional", "opt_in", "staff")
    assert event.evidence == {"channel": "phone", "staff": EMAIL, "staff_account": staff_id,
                              "note": OPT_IN_BY_PHONE["note"]}  # fmt: skip
    (audit,) = rows(app, AuditEvent, AuditEvent.action == "record_consent")
    assert audit.actor == f"staff:{staff_id}"
    assert audit.details == {"category": "transactional", "consent_action": "opt_in",
                             "channel": "phone"}  # fmt: skip

    assert dispatcher.run_pass().sent == 1
    assert console.sent[0][0].to == PATIENT
    page = text_of(client.get(PATIENT_PAGE))
    messages = page[page.index("Recent messages"):page.index("Consent timeline")]
    assert "To the patient Shared Line Clinic: reminder of your appointment" in messages
    assert " sent" in messages
    timeline = page[page.index("Consent timeline"):]
    assert f"Staff Channel Phone call Staff {EMAIL}" in timeline
    assert "Note Called the front desk: wants reminders again." in timeline


def test_an_opt_out_by_phone_skips_the_next_reminder_and_says_why(
    client, api, dispatcher, console, staff_id
):
    api.enqueue()
    form = {**OPT_IN_BY_PHONE, "action": "opt_out", "channel": "front_desk",
            "note": "Asked at the desk: no more texts."}  # fmt: skip
    assert post_form(client, CONSENT_PAGE, form).status_code == 303
    assert dispatcher.run_pass().skipped == {"opted_out": 1}
    assert console.sent == []
    page = text_of(client.get(PATIENT_PAGE))
    assert "skipped the patient opted out of this kind of message" in page
    assert "In person (front desk)" in page


def test_a_deferred_reminder_shows_when_and_why(app, client, api, dispatcher, clock, staff_id):
    night = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # 21:00 in Miami
    clock.now = night
    with time_machine.travel(night, tick=False):
        api.enqueue(send_at="2026-03-03T01:59:00Z")
        assert dispatcher.run_pass().deferred == 1
        sign_in(client)  # eleven hours on: the morning's session has ended
        page = text_of(client.get(PATIENT_PAGE))
    upcoming = page[page.index("Upcoming reminders"):page.index("Recent messages")]
    assert "appt-1001" in upcoming
    assert "Tue 3 Mar 2026, 08:00 EST" in upcoming
    assert "scheduled" in upcoming
    assert "outside the sending window 08:00-20:00 local time" in upcoming
    assert "Tue 3 Mar 2026, 14:30 EST" in upcoming  # expires_at 19:30 UTC


def test_the_do_not_text_flag_and_the_alternate_number_show(client, api, staff_id):
    api.patch(f"/api/v1/contacts/{PATIENT}",
              json={"practice": "shared", "do_not_text": True,
                    "alternate_phone": "(305) 555-0777"})  # fmt: skip
    page = text_of(client.get(PATIENT_PAGE))
    assert "Do not text Yes : no texts to this number; they go to +1 305-555-0777" in page


def test_a_guardians_page_shows_the_texts_sent_for_the_minor(
    client, api, dispatcher, staff_id
):
    guardian = "+13055550999"
    api.patch(f"/api/v1/contacts/{PATIENT}", json={
        "practice": "shared", "date_of_birth": "2009-06-01", "guardian_phone": guardian,
    })  # fmt: skip
    api.enqueue()
    assert dispatcher.run_pass().sent == 1
    page = text_of(client.get(f"/console/shared/patients/{guardian}"))
    assert "To the patient (as guardian of +1 305-555-0123)" in page
    page = text_of(client.get(PATIENT_PAGE))
    assert "To the patient (sent to +1 305-555-0999)" in page


# --- bad consent changes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"category": "marketing"}, "needs the patient's express written consent"),
        ({"action": "maybe"}, "Choose opt-in or opt-out."),
        ({"category": "promos"}, "Choose care messages or offers."),
        ({"channel": "carrier pigeon"}, "Choose how the patient told the practice."),
        ({"note": "   "}, "Write down what the patient asked for"),
        ({"note": "x" * 1001}, "Keep the note under 1000 characters"),
        ({"occurred_at": "2026-03-09T10:00"}, "That is in the future."),
        ({"occurred_at": "2024-01-01T10:00"}, "That is more than a year ago."),
        ({"occurred_at": "yesterday"}, "Give the date and time as YYYY-MM-DD HH:MM"),
    ],
)
def test_a_bad_consent_change_is_explained_and_writes_nothing(
    app, client, staff_id, change, message
):
    response = post_form(client, CONSENT_PAGE, {**OPT_IN_BY_PHONE, **change})
    assert response.status_code == 422
    page = text_of(response)
    assert "There is a problem" in page and message in page
    assert count(app, ConsentEvent) == 0
    assert count(app, AuditEvent, AuditEvent.action == "record_consent") == 0
    # what was typed is kept in the form
    if change.get("note", "").strip():
        assert change["note"][:50] in response.get_data(as_text=True)


def test_a_change_can_be_dated_in_the_practices_time(app, client, staff_id):
    form = {**OPT_IN_BY_PHONE, "action": "opt_out", "occurred_at": "2026-03-01T09:30"}
    assert post_form(client, CONSENT_PAGE, form).status_code == 303
    (event,) = rows(app, ConsentEvent)
    assert event.occurred_at == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)  # 09:30 EST


def test_the_consent_form_renders_with_the_current_state(client, twilio, staff_id):
    twilio.inbound("STOP")
    response = client.get(CONSENT_PAGE)
    assert response.status_code == 200
    page = text_of(response)
    assert "Record a consent change for +1 305-555-0123" in page
    assert "Care messages Opted out" in page
    html = response.get_data(as_text=True)
    for field in ("category-transactional", "action-opt_in", "channel", "note", "occurred_at"):
        assert f'for="{field}"' in html and f'id="{field}"' in html


# --- the review queue ---------------------------------------------------------------------------


def test_a_possible_opt_out_is_read_and_resolved_as_an_opt_out(app, client, twilio, api, staff_id):
    twilio.inbound("please, stop by tomorrow?", sid="SM" + "a" * 32)
    twilio.inbound("Wrong number", from_=patient(1), to=SPLIT_TRANSACTIONAL)  # another practice
    queue = client.get("/console/shared/reviews")
    assert queue.status_code == 200
    assert "please, stop by tomorrow?" in text_of(queue)
    assert "Wrong number" not in text_of(queue)
    (item,) = rows(app, InboundMessage, InboundMessage.review_status == "open",
                   InboundMessage.practice == "shared")  # fmt: skip
    path = f"/console/shared/reviews/{item.id}"
    page = text_of(client.get(path))
    assert "please, stop by tomorrow?" in page and "Care messages Implied" in page

    response = post_form(client, path, {"resolution": "opt_out", "note": "confirmed by phone"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/shared/reviews"
    assert "Resolved: the text was an opt-out" in text_of(client.get("/console/shared/reviews"))
    assert "Nothing to review." in text_of(client.get("/console/shared/reviews"))
    consent = api.contact()["consent"]
    assert consent["transactional"]["status"] == consent["marketing"]["status"] == "opted_out"
    assert consent["transactional"]["event"]["evidence"]["staff"] == EMAIL
    (resolved,) = rows(app, InboundMessage, InboundMessage.id == item.id)
    assert (resolved.reviewed_by, resolved.review_note) == (EMAIL, "confirmed by phone")
    (audit,) = rows(app, AuditEvent, AuditEvent.action == "resolve_review")
    assert audit.actor == f"staff:{staff_id}"
    assert "An opt-out: decided by " + EMAIL in text_of(client.get(path))


def test_a_possible_opt_out_can_be_dismissed(app, client, twilio, api, staff_id):
    twilio.inbound("I'll stop by at 3")
    (item,) = rows(app, InboundMessage, InboundMessage.review_status == "open")
    path = f"/console/shared/reviews/{item.id}"
    assert post_form(client, path, {"resolution": "dismiss"}).status_code == 303
    assert api.contact()["consent"]["transactional"]["status"] == "implied"
    assert count(app, ConsentEvent) == 0


def test_an_item_is_resolved_once(app, client, twilio, staff_id):
    twilio.inbound("I'll stop by at 3")
    (item,) = rows(app, InboundMessage, InboundMessage.review_status == "open")
    path = f"/console/shared/reviews/{item.id}"
    token = csrf_of(client.get(path))
    assert client.post(path, data={"resolution": "dismiss", "csrf_token": token}).status_code == 303
    again = client.post(path, data={"resolution": "opt_out", "csrf_token": token})
    assert again.status_code == 409
    assert "Someone else resolved this text first" in text_of(again)
    assert count(app, ConsentEvent) == 0


def test_a_resolution_must_be_chosen(app, client, twilio, staff_id):
    twilio.inbound("I'll stop by at 3")
    (item,) = rows(app, InboundMessage, InboundMessage.review_status == "open")
    response = post_form(client, f"/console/shared/reviews/{item.id}", {"resolution": "maybe"})
    assert response.status_code == 422
    assert "Choose whether the text was an opt-out." in text_of(response)
    assert rows(app, InboundMessage)[0].review_status == "open"


@pytest.mark.parametrize(
    "path",
    ["/console/shared/reviews/999999", "/console/shared/reviews/99999999999",
     "/console/shared/reviews?before=abc", "/console/shared/reviews?before=424242"],
)  # fmt: skip
def test_unknown_review_items_are_404(client, staff_id, path):
    assert client.get(path).status_code == 404


def test_a_text_that_needed_no_review_is_no_review_item(app, client, twilio, staff_id):
    twilio.inbound("STOP")
    (message,) = rows(app, InboundMessage)
    assert client.get(f"/console/shared/reviews/{message.id}").status_code == 404


def test_another_practices_review_item_is_404(app, client, twilio, staff_id):
    twilio.inbound("Wrong number", to=SPLIT_TRANSACTIONAL)
    (item,) = rows(app, InboundMessage)
    assert client.get(f"/console/split/reviews/{item.id}").status_code == 200
    assert client.get(f"/console/shared/reviews/{item.id}").status_code == 404


# --- the dashboard ------------------------------------------------------------------------------


def outbound(app, n: int, **values) -> None:
    base = {"practice": "shared", "phone": patient(n), "category": "transactional",
            "template": "appointment_reminder", "params": {},
            "send_at": datetime(2026, 3, 1, tzinfo=UTC), "attempts": 1,
            "next_attempt_at": datetime(2026, 3, 1, tzinfo=UTC)}  # fmt: skip
    with get_database_of(app).sessions() as session:
        session.add(OutboundMessage(**{**base, **values}))
        session.commit()


def test_the_dashboard_counts_per_local_day(app, client, twilio, clock, staff_id):
    # 2026-03-02 04:30 UTC is 23:30 on 1 March in New York: it counts on 1 March
    late_on_the_first = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)
    today = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    outbound(app, 1, status="sent", sent_at=late_on_the_first)
    outbound(app, 2, status="delivered", sent_at=today, completed_at=today)
    outbound(app, 3, status="delivered", sent_at=today, completed_at=today)
    outbound(app, 4, status="failed", sent_at=today, completed_at=today, error_code=30003)
    outbound(app, 5, status="undelivered", sent_at=today, completed_at=today)
    outbound(app, 6, status="failed", completed_at=today, reason="gave up after 6 attempts")
    outbound(app, 7, status="sent", sent_at=today - timedelta(days=40))  # before the window
    outbound(app, 8, status="sent", sent_at=today, practice="split")  # another practice
    twilio.inbound("STOP")  # one number, two categories: one opt-out
    twilio.inbound("STOP", from_=patient(9))

    with get_database_of(app).sessions() as session:
        practice = app.extensions["gateway.settings"].practices["shared"]
        daily = stats.daily_counts(session, practice, clock.now)
    assert len(daily.days) == 30 and str(daily.days[-1]) == "2026-03-02"
    by_day = {str(day): counts for day, counts in daily.rows()}
    assert by_day["2026-03-01"] == {"sent": 1, "delivered": 0, "failed": 0, "opt_outs": 0}
    assert by_day["2026-03-02"] == {"sent": 4, "delivered": 2, "failed": 3, "opt_outs": 2}
    assert daily.totals() == {"sent": 5, "delivered": 2, "failed": 3, "opt_outs": 2}

    response = client.get("/console/shared/dashboard")
    assert response.status_code == 200
    page = text_of(response)
    assert "5 sent, 2 delivered, 3 failed, 2 opt-outs" in page
    assert "Mon 2 Mar 4 2 3 2" in page and "Sun 1 Mar 1 0 0 0" in page
    html = response.get_data(as_text=True)
    assert html.count("<polyline") == 4
    assert 'role="img"' in html and "<title id=\"chart-title\">" in html
    assert "<script" not in html


def test_the_dashboard_shows_the_outbox_now(app, client, clock, staff_id):
    now = clock.now
    outbound(app, 1, status="scheduled", next_attempt_at=now - timedelta(minutes=1))
    outbound(app, 2, status="scheduled", next_attempt_at=now + timedelta(hours=9),
             reason="outside the sending window 08:00-20:00 local time")  # fmt: skip
    outbound(app, 3, status="scheduled", next_attempt_at=now + timedelta(minutes=5),
             reason="retrying: HTTP 503")  # fmt: skip
    outbound(app, 4, status="scheduled", next_attempt_at=now + timedelta(days=2))
    outbound(app, 5, status="sending", next_attempt_at=now)
    outbound(app, 6, status="uncertain", next_attempt_at=now)
    outbound(app, 7, status="delivered", next_attempt_at=now)
    page = text_of(client.get("/console/shared/dashboard"))
    assert "1 due" in page
    assert "2 deferred" in page
    assert "2 in flight" in page
    assert "1 scheduled for later" in page
    assert "0 possible opt-outs to review" in page


def test_the_dashboard_of_an_empty_practice_renders(client, staff_id):
    response = client.get("/console/split/dashboard")
    assert response.status_code == 200
    assert "0 sent, 0 delivered, 0 failed, 0 opt-outs" in text_of(response)


# --- the audit log and the home page ----------------------------------------------------------


def test_the_audit_log_names_the_staff_member_and_never_the_full_number(
    app, client, twilio, staff_id
):
    twilio.inbound("STOP", to=SHARED)
    client.get(PATIENT_PAGE)
    post_form(client, CONSENT_PAGE, OPT_IN_BY_PHONE)
    response = client.get("/console/shared/audit")
    assert response.status_code == 200
    page = text_of(response)
    recorded = "record consent …0123 category: transactional; channel: phone; consent action: "
    assert f"{EMAIL} {recorded}opt_in" in page
    assert f"{EMAIL} read contact …0123" in page
    assert f"{EMAIL} sign in" in page
    assert "555-0123" not in page and "5550123" not in page


def test_the_audit_log_pages_back(app, client, staff_id):
    with get_database_of(app).sessions() as session:
        for n in range(105):
            session.add(AuditEvent(actor="token:abc", action=f"action_{n}", practice="shared",
                                   details={}))  # fmt: skip
        session.commit()
    first = client.get("/console/shared/audit")
    assert "action 104" in text_of(first) and "action 3 " not in text_of(first)
    link = csrf_free_link(first.get_data(as_text=True), "Older events")
    older = client.get(link)
    assert "action 3 " in text_of(older) and "action 104" not in text_of(older)
    assert client.get("/console/shared/audit?before=x1").status_code == 404


def csrf_free_link(html: str, text: str) -> str:
    import re

    match = re.search(r'<a href="([^"]+)">' + text, html)
    assert match
    return match.group(1).replace("&amp;", "&")


def test_the_home_page_finds_patients_in_every_practice_of_the_account(client, staff_id):
    response = client.get("/console/")
    html = response.get_data(as_text=True)
    assert '<label for="phone">Phone number</label>' in html
    assert '<option value="split"' in html
    assert '<a class="skip-link" href="#main">' in html
    assert '<main id="main"' in html and '<nav aria-label="Main">' in html
