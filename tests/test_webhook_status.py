"""POST /webhooks/twilio/status: signed, idempotent, never backwards, error codes acted on."""

from __future__ import annotations

import pytest

from conftest import new_sid

STATUS = "/webhooks/twilio/status"


def callback(twilio, sid, status, **extra):
    return twilio.status(sid, status, **extra)


def test_delivered_callback_completes_the_reminder(twilio, api, sent):
    assert callback(twilio, sent, "sent").status_code == 204
    assert callback(twilio, sent, "delivered").status_code == 204
    reminder = api.reminder()
    assert reminder["status"] == "delivered"
    assert reminder["completed_at"] is not None


def test_unsigned_callback_is_403_and_changes_nothing(client, api, sent):
    response = client.post(STATUS, data={"MessageSid": sent, "MessageStatus": "delivered"})
    assert response.status_code == 403
    assert api.reminder()["status"] == "sent"


@pytest.mark.parametrize(
    ("order", "final"),
    [
        (["delivered", "sent"], "delivered"),
        (["delivered", "sending", "queued"], "delivered"),
        (["sent", "undelivered", "sent"], "undelivered"),
        (["delivered", "delivered"], "delivered"),
        (["delivered", "read"], "delivered"),
        (["failed", "delivered"], "failed"),  # the first final status stands
        (["sending", "sent"], "sent"),
    ],
)
def test_statuses_never_move_backwards(twilio, api, sent, order, final):
    for status in order:
        assert callback(twilio, sent, status).status_code == 204
    assert api.reminder()["status"] == final


def test_unknown_message_and_unknown_status_are_acknowledged(twilio, sent):
    assert callback(twilio, new_sid(), "delivered").status_code == 204
    assert callback(twilio, sent, "teleported").status_code == 204


def test_callback_without_a_status_is_400(twilio, sent):
    response = twilio.post(STATUS, {"MessageSid": sent})
    assert response.status_code == 400
    assert "MessageStatus" in response.get_json()["error"]


def test_landline_error_marks_the_number_and_later_reminders_skip_it(
    twilio, api, sent, dispatcher, console
):
    callback(twilio, sent, "undelivered", ErrorCode="30006")
    reminder = api.reminder()
    assert (reminder["status"], reminder["error_code"]) == ("undelivered", 30006)
    api.enqueue(id="appt-1002")
    assert dispatcher.run_pass().skipped == {"not_mobile": 1}
    assert len(console.sent) == 1


def test_opted_out_error_in_a_callback_records_a_carrier_revocation(twilio, api, sent):
    callback(twilio, sent, "failed", ErrorCode="21610")
    consent = api.contact()["consent"]
    assert consent["transactional"]["status"] == "opted_out"
    assert consent["transactional"]["source"] == "carrier_error"
    assert consent["transactional"]["event"]["evidence"]["error_code"] == 21610
    assert consent["marketing"]["status"] == "opted_out"  # the shared sender carries both


def test_a_text_from_the_number_clears_the_unreachable_mark(twilio, api, sent, dispatcher, clock):
    callback(twilio, sent, "undelivered", ErrorCode="30006")
    twilio.inbound("HELP")
    api.enqueue(id="appt-1002")
    clock.advance(days=1)  # the next care text without express consent: a day later (the cap)
    assert dispatcher.run_pass().sent == 1
