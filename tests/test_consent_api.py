"""Consent and contact settings over the API: other channels, the marketing double opt-in, minors,
guardians, do-not-text. Each rule is checked where it bites: in the next dispatch pass."""

from __future__ import annotations

from datetime import date

import pytest
import time_machine

from conftest import MARKETING_FORM, PATIENT, SPLIT_MARKETING_SERVICE

GUARDIAN = "+13055550999"
ALTERNATE = "+13055550777"
FORM = MARKETING_FORM


@pytest.fixture(autouse=True)
def at_the_dispatchers_time(clock):
    """The API stamps times with the real clock; hold it at the dispatcher's (10:00 in Miami)."""
    with time_machine.travel(clock.now, tick=False):
        yield


def patch(api, practice="shared", phone=PATIENT, **fields):
    return api.patch(f"/api/v1/contacts/{phone}", json={"practice": practice, **fields})


# --- consent taken outside SMS ------------------------------------------------------------


def staff_consent(api, practice="shared", **body):
    payload = {
        "practice": practice,
        "category": "transactional",
        "action": "opt_out",
        "channel": "phone",
        "staff": "front-desk-ana",
        "note": "called to stop texts",
    }
    payload.update(body)  # fmt: skip
    return api.post(f"/api/v1/contacts/{PATIENT}/consent", json=payload)


def test_an_opt_out_by_phone_stops_the_next_pass(api, dispatcher, console):
    api.enqueue()
    response = staff_consent(api)
    assert response.status_code == 201
    state = response.get_json()["consent"]["transactional"]
    assert (state["status"], state["source"]) == ("opted_out", "staff")
    assert state["event"]["evidence"] == {
        "channel": "phone", "staff": "front-desk-ana", "note": "called to stop texts",
    }  # fmt: skip
    assert dispatcher.run_pass().skipped == {"opted_out": 1}
    assert console.sent == []


def test_an_opt_in_at_the_front_desk_restores_care_texts(api, twilio, dispatcher):
    twilio.inbound("STOP")
    assert staff_consent(api, action="opt_in", channel="front_desk").status_code == 201
    api.enqueue()
    assert dispatcher.run_pass().sent == 1


def test_an_older_phone_call_recorded_late_does_not_override_a_newer_stop(api, twilio):
    twilio.inbound("STOP")
    staff_consent(api, action="opt_in", occurred_at="2026-01-01T10:00:00Z")
    assert api.contact()["consent"]["transactional"]["status"] == "opted_out"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"category": "marketing", "action": "opt_in"}, "action"),
        ({"action": "maybe"}, "action"),
        ({"category": "promos"}, "category"),
        ({"channel": "carrier pigeon"}, "channel"),
        ({"staff": ""}, "staff"),
        ({"note": "x" * 1001}, "note"),
        ({"occurred_at": "2099-01-01T00:00:00Z"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"source": "staff"}, "source"),
    ],
)
def test_bad_consent_records_are_422_and_change_nothing(api, body, field):
    response = staff_consent(api, **body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert api.contact()["consent"]["transactional"]["status"] == "implied"


# --- the marketing double opt-in ------------------------------------------------------------


def test_double_opt_in_end_to_end(api, twilio, dispatcher, console):
    response = api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=FORM)
    assert response.status_code == 202
    body = response.get_json()
    assert body["consent"]["status"] == "pending"
    assert body["confirmation"]["template"] == "marketing_opt_in_request"
    assert api.contact(practice="split")["consent"]["marketing"]["status"] == "pending"

    # one confirmation text, from the marketing sender, asking for YES
    assert dispatcher.run_pass().sent == 1
    ((sms, _),) = console.sent
    assert sms.sender == SPLIT_MARKETING_SERVICE
    assert "reply YES" in sms.body
    assert "Consent is not a condition of purchase." in sms.body
    assert "Reply HELP for help, STOP to cancel." in sms.body

    # a second form submission while pending sends no second text
    again = api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=FORM)
    assert again.status_code == 200
    assert again.get_json()["confirmation"] is None

    # the patient's YES grants marketing, with the evidence chain
    reply = twilio.inbound("YES", to="+13125550199", MessagingServiceSid=SPLIT_MARKETING_SERVICE)
    assert "subscribed to offers" in reply.get_data(as_text=True)
    state = api.contact(practice="split")["consent"]["marketing"]
    assert (state["status"], state["source"]) == ("opted_in", "keyword")
    assert state["event"]["evidence"]["confirms_event_id"] == body["consent"]["event"]["id"]
    # and the web form's evidence is on record
    assert body["consent"]["event"]["evidence"]["ip"] == "203.0.113.7"
    assert body["consent"]["event"]["evidence"]["page_url"] == FORM["page_url"]


def test_yes_without_a_pending_request_is_a_start(api, twilio):
    twilio.inbound("STOP", to="+13125550110")
    reply = twilio.inbound("YES", to="+13125550110")
    assert "subscribed again" in reply.get_data(as_text=True)
    consent = api.contact(practice="split")["consent"]
    assert consent["transactional"]["status"] == "opted_in"
    assert consent["marketing"]["status"] == "none"


def test_an_unanswered_request_lapses(api, twilio):
    with time_machine.travel("2026-03-02T15:00:00Z", tick=False):
        api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=FORM)
    with time_machine.travel("2026-03-09T15:00:01Z", tick=False):  # 168 h + 1 s later
        assert api.contact(practice="split")["consent"]["marketing"]["status"] == "none"
        reply = twilio.inbound("YES", to="+13125550110")
        # nothing to confirm and nothing opted out: no consent event, no "subscribed again"
        assert "<Message>" not in reply.get_data(as_text=True)
        consent = api.contact(practice="split")["consent"]
        assert consent["marketing"]["status"] == "none"
        assert consent["transactional"]["status"] == "implied"


def test_marketing_is_never_requested_for_a_minor(api):
    form = {**FORM, "date_of_birth": "2012-05-01"}
    form.pop("adult_attested")
    response = api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=form)
    assert response.status_code == 422
    assert "minors" in response.get_json()["errors"]["date_of_birth"]
    assert api.contact(practice="split")["consent"]["marketing"]["status"] == "none"


def test_marketing_needs_an_age_attestation_without_a_birth_date(api):
    form = dict(FORM)
    form.pop("adult_attested")
    response = api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=form)
    assert response.status_code == 422
    assert "adult_attested" in response.get_json()["errors"]


@pytest.mark.parametrize("field", ["disclosure", "page_url", "ip"])
def test_the_web_form_evidence_is_required(api, field):
    form = {**FORM, field: None}
    response = api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=form)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_a_practice_without_a_marketing_sender_cannot_request_marketing(
    make_app, database_url, tmp_path
):
    single = tmp_path / "one.toml"
    single.write_text(
        '[practices.solo]\nname = "Solo"\ntime_zone = "America/New_York"\n'
        'help_contact = "+1 786-305-8649"\n[practices.solo.senders]\n'
        'transactional = "+17865550100"\n'
    )
    from conftest import API_TOKEN

    client = make_app(database_url, GATEWAY_CONFIG=str(single)).test_client()
    form = {k: v for k, v in FORM.items() if k != "practice"}
    response = client.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=form,
                           headers={"Authorization": f"Bearer {API_TOKEN}"})  # fmt: skip
    assert response.status_code == 422
    assert "marketing sender" in response.get_json()["errors"]["practice"]


# --- contact settings: do-not-text, alternate number, minors and guardians -----------------


def test_contact_settings_round_trip(api):
    response = patch(api, time_zone="America/Chicago", language="es", do_not_text=True,
                     alternate_phone="(305) 555-0777", date_of_birth="1990-04-01")  # fmt: skip
    assert response.status_code == 200
    body = response.get_json()
    assert body["time_zone"] == "America/Chicago"
    assert body["alternate_phone"] == ALTERNATE
    assert body["date_of_birth"] == "1990-04-01"
    assert body["do_not_text"] is True
    assert api.contact()["language"] == "es"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"do_not_text": "yes"}, "do_not_text"),
        ({"alternate_phone": "12345"}, "alternate_phone"),
        ({"guardian_phone": PATIENT}, "guardian_phone"),
        ({"date_of_birth": "01/02/2000"}, "date_of_birth"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"language": "fr"}, "language"),
        ({"nickname": "Al"}, "nickname"),
    ],
)
def test_bad_contact_settings_are_422(api, fields, field):
    response = patch(api, **fields)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert api.contact()["known"] is False


def test_do_not_text_skips_every_message(api, dispatcher, console):
    patch(api, do_not_text=True)
    api.enqueue()
    assert dispatcher.run_pass().skipped == {"do_not_text": 1}
    assert console.sent == []
    assert api.reminder()["reason"] == "do_not_text"


def test_the_designated_alternate_number_receives_instead(api, dispatcher, console):
    patch(api, do_not_text=True, alternate_phone=ALTERNATE)
    api.enqueue()
    assert dispatcher.run_pass().sent == 1
    assert console.sent[0][0].to == ALTERNATE


def test_a_minors_care_messages_go_to_the_guardian_under_the_guardians_consent(
    api, twilio, dispatcher, console
):
    patch(api, date_of_birth="2009-06-01", guardian_phone=GUARDIAN)  # 16 on 2026-03-02
    api.enqueue()
    assert dispatcher.run_pass().sent == 1
    assert console.sent[0][0].to == GUARDIAN
    twilio.inbound("STOP", from_=GUARDIAN)  # the guardian revokes
    api.enqueue(id="appt-1002", send_at="2026-03-02T15:00:01Z")
    assert dispatcher.run_pass().skipped == {"opted_out": 1}


def test_a_minor_without_a_guardian_is_not_texted(api, dispatcher, console):
    patch(api, date_of_birth="2009-06-01")
    api.enqueue()
    assert dispatcher.run_pass().skipped == {"no_guardian": 1}


def test_an_18_plus_practice_rejects_enqueues_for_minors(api):
    patch(api, practice="split", date_of_birth="2010-01-01")
    response = api.post("/api/v1/reminders", json={
        "id": "appt-9", "practice": "split", "to": PATIENT, "send_at": "2026-03-02T15:00:00Z",
        "template": "appointment_reminder", "params": {"appointment_time": "2026-03-03T19:30:00Z"},
    })  # fmt: skip
    assert response.status_code == 422
    assert "minimum age (18)" in response.get_json()["errors"]["to"]


def test_care_texts_without_express_consent_must_fit_one_segment(api):
    long_place = "Suite 2400, Brickell World Plaza, 600 Brickell Avenue, Miami FL 33131"
    response = api.post("/api/v1/reminders", json={
        "id": "appt-9", "practice": "shared", "to": PATIENT, "send_at": "2026-03-02T15:00:00Z",
        "template": "appointment_reminder",
        "params": {"appointment_time": "2026-03-03T19:30:00Z", "location": long_place},
    })  # fmt: skip
    assert response.status_code == 422
    assert "160 characters" in response.get_json()["errors"]["template"]


def test_with_express_consent_the_length_limit_does_not_apply(api, dispatcher):
    staff_consent(api, action="opt_in", channel="front_desk")
    long_place = "Suite 2400, Brickell World Plaza, 600 Brickell Avenue, Miami FL 33131"
    params = {"appointment_time": "2026-03-03T19:30:00Z", "location": long_place}
    api.enqueue(params=params)
    assert dispatcher.run_pass().sent == 1


def test_the_birth_date_is_taken_as_a_date(api):
    patch(api, date_of_birth=date(1990, 4, 1).isoformat())
    assert api.contact()["date_of_birth"] == "1990-04-01"


def test_marketing_consent_names_its_practice_in_the_query_like_every_other_call(api):
    form = {k: v for k, v in FORM.items() if k != "practice"}
    response = api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=form,
                        query_string={"practice": FORM["practice"]})  # fmt: skip
    assert response.status_code == 202, response.get_json()
    assert api.contact(practice=FORM["practice"])["consent"]["marketing"]["status"] == "pending"
    other = "shared" if FORM["practice"] != "shared" else "split"
    clash = api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=FORM,
                     query_string={"practice": other})  # fmt: skip
    assert clash.status_code == 422
    assert "practice" in clash.get_json()["errors"]
