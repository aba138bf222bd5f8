"""Consent given is acted on: care reminders that the FCC healthcare exemption's caps (1 a day,
3 a week without express consent) held back are decided again at the very next dispatch pass once
express consent is recorded, not a day or a week later. On the real clock, travelled."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine
from console_support import create_staff, post_form, sign_in

from conftest import PATIENT
from gateway.services.dispatch import Dispatcher
from gateway.store.outbox import RECONSIDER_REASON

GUARDIAN = "+13055550177"
OTHER = "+13055550188"
#: 10:00 in Miami, on the dispatcher's day
MORNING = "2026-03-02T15:00:00+00:00"


@pytest.fixture
def dispatch(app, console):
    """One pass on the real clock (travelled by the test)."""
    return lambda: Dispatcher.from_app(app, owner="t").run_pass()


def at(moment: str):
    return time_machine.travel(datetime.fromisoformat(moment), tick=False)


def enqueue(api, reminder_id, **overrides):
    body = {"id": reminder_id, "send_at": "2026-03-02T15:00:00Z", "expires_at": None,
            "params": {"appointment_time": "2026-03-20T15:00:00Z"}}  # fmt: skip
    return api.enqueue(**{**body, **overrides})


def staff_consent(api, phone=PATIENT, action="opt_in"):
    body = {"practice": "shared", "category": "transactional", "action": action,
            "channel": "front_desk", "staff": "ana"}  # fmt: skip
    response = api.post(f"/api/v1/contacts/{phone}/consent", json=body)
    assert response.status_code == 201, response.get_json()


def held_back_by_the_cap(api, dispatch, phone=PATIENT):
    """Two care reminders for today: the first goes, the second waits for tomorrow (1 a day)."""
    enqueue(api, "appt-1", to=phone)
    assert dispatch().sent == 1
    enqueue(api, "appt-2", to=phone)
    assert dispatch().deferred == 1
    waiting = api.reminder("appt-2")
    assert (waiting["status"], waiting["reason"]) == ("scheduled", "frequency cap")
    assert waiting["next_attempt_at"] == "2026-03-03T15:00:00Z"


def test_front_desk_consent_through_the_api_sends_the_held_reminder_at_the_next_pass(
    api, dispatch, console
):
    with at(MORNING):
        held_back_by_the_cap(api, dispatch)
    with at("2026-03-02T15:10:00+00:00"):
        assert dispatch().claimed == 0  # nothing is due before the consent
        staff_consent(api)
        waiting = api.reminder("appt-2")
        assert (waiting["next_attempt_at"], waiting["reason"]) == (
            "2026-03-02T15:10:00Z", RECONSIDER_REASON,
        )  # fmt: skip
        assert dispatch().sent == 1
    assert api.reminder("appt-2")["status"] == "sent"
    assert [sms.to for sms, _ in console.sent] == [PATIENT, PATIENT]


def test_front_desk_consent_in_the_console_sends_the_held_reminder_at_the_next_pass(
    app, client, api, dispatch, console
):
    create_staff(app)
    with at(MORNING):
        held_back_by_the_cap(api, dispatch)
    with at("2026-03-02T15:10:00+00:00"):
        assert sign_in(client).status_code == 303
        form = {"category": "transactional", "action": "opt_in", "channel": "phone",
                "note": "Wants every reminder."}  # fmt: skip
        page = f"/console/shared/patients/{PATIENT}/consent"
        assert post_form(client, page, form).status_code == 303
        assert dispatch().sent == 1
    assert len(console.sent) == 2


def test_a_weekly_cap_is_lifted_too(api, dispatch, console):
    for day in (2, 3, 4):
        with at(f"2026-03-0{day}T15:00:00+00:00"):
            enqueue(api, f"appt-{day}", send_at=f"2026-03-0{day}T15:00:00Z")
            assert dispatch().sent == 1
    with at("2026-03-05T15:00:00+00:00"):
        enqueue(api, "appt-5", send_at="2026-03-05T15:00:00Z")
        assert dispatch().deferred == 1
        assert api.reminder("appt-5")["next_attempt_at"] == "2026-03-09T15:00:00Z"  # a week on
        staff_consent(api)
        assert dispatch().sent == 1
    assert len(console.sent) == 4


def test_consent_at_night_brings_the_reminder_to_the_mornings_window_not_the_caps_day(
    api, dispatch, console
):
    with at("2026-03-02T22:00:00+00:00"):  # 17:00 in Miami
        enqueue(api, "appt-1", send_at="2026-03-02T22:00:00Z")
        assert dispatch().sent == 1
        enqueue(api, "appt-2", send_at="2026-03-02T22:00:00Z")
        assert dispatch().deferred == 1
        assert api.reminder("appt-2")["next_attempt_at"] == "2026-03-03T22:00:00Z"
    with at("2026-03-03T03:00:00+00:00"):  # 22:00 in Miami: the window has closed
        staff_consent(api)
        assert dispatch().deferred == 1
        waiting = api.reminder("appt-2")
        assert waiting["next_attempt_at"] == "2026-03-03T13:00:00Z"  # 08:00 in Miami
        assert waiting["reason"].startswith("outside the sending window")
    assert len(console.sent) == 1


def test_a_guardians_consent_releases_the_minors_reminders_sent_to_the_guardian(
    api, dispatch, console
):
    with at(MORNING):
        minor = {"practice": "shared", "date_of_birth": "2009-06-01", "guardian_phone": GUARDIAN}
        response = api.patch(f"/api/v1/contacts/{PATIENT}", json=minor)
        assert response.status_code == 200
        enqueue(api, "appt-1")
        assert dispatch().sent == 1
        enqueue(api, "appt-2")
        assert dispatch().deferred == 1
        staff_consent(api, phone=GUARDIAN)
        assert dispatch().sent == 1
    assert [sms.to for sms, _ in console.sent] == [GUARDIAN, GUARDIAN]


@pytest.mark.parametrize(
    "consent_given",
    [
        pytest.param(lambda api: staff_consent(api, action="opt_out"), id="an opt-out"),
        pytest.param(lambda api: staff_consent(api, phone=OTHER), id="another number's opt-in"),
    ],
)
def test_only_an_opt_in_for_the_number_moves_its_reminders(api, dispatch, console, consent_given):
    with at(MORNING):
        held_back_by_the_cap(api, dispatch)
        before = api.reminder("appt-2")
    with at("2026-03-02T15:10:00+00:00"):
        consent_given(api)
        assert dispatch().claimed == 0
        assert api.reminder("appt-2") == before


def test_a_window_deferral_is_left_alone(api, dispatch):
    with at("2026-03-03T03:00:00+00:00"):  # 22:00 in Miami
        enqueue(api, "appt-1", send_at="2026-03-03T03:00:00Z")
        assert dispatch().deferred == 1
        before = api.reminder("appt-1")
        staff_consent(api)
        assert api.reminder("appt-1") == before
        assert dispatch().claimed == 0


@pytest.mark.parametrize("body", ["START", "UNSTOP", "alta"])
def test_start_texted_by_the_patient_sends_the_held_reminder_at_the_next_pass(
    api, twilio, dispatch, console, body
):
    with at(MORNING):
        held_back_by_the_cap(api, dispatch)
    with at("2026-03-02T15:10:00+00:00"):
        twilio.inbound(body)  # express consent for care messages, by text
        assert api.reminder("appt-2")["reason"] == RECONSIDER_REASON
        assert dispatch().sent == 1
    assert [sms.to for sms, _ in console.sent] == [PATIENT, PATIENT]


def test_a_yes_that_answers_nothing_leaves_the_cap_alone(api, twilio, dispatch):
    with at(MORNING):
        held_back_by_the_cap(api, dispatch)
    with at("2026-03-02T15:10:00+00:00"):
        twilio.inbound("YES")  # no double opt-in pending, nothing opted out: no consent event
        assert api.reminder("appt-2")["reason"] == "frequency cap"
        assert dispatch().claimed == 0
