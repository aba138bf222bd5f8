"""POST/GET/DELETE /api/v1/reminders: validation, idempotency, cancellation."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from conftest import PATIENT, reminder_body
from gateway.store.models import OutboundMessage

URL = "/api/v1/reminders"


def stored(session) -> int:
    return session.scalar(select(func.count()).select_from(OutboundMessage))


def test_enqueue_returns_201_with_the_normalised_reminder(api):
    response = api.post(URL, json=reminder_body())
    assert response.status_code == 201
    body = response.get_json()
    assert body["id"] == "appt-1001"
    assert body["to"] == PATIENT
    assert body["status"] == "scheduled"
    assert body["category"] == "transactional"
    assert body["send_at"] == "2026-03-02T15:00:00Z"
    assert body["next_attempt_at"] == "2026-03-02T15:00:00Z"
    assert body["params"] == {"appointment_time": "2026-03-03T19:30:00+00:00"}
    assert response.headers["Location"] == "/api/v1/reminders/appt-1001?practice=shared"


def test_identical_replay_is_200_and_stores_nothing_new(api, session):
    api.enqueue()
    # the same request, the number typed differently and the time in another offset
    replay = reminder_body(to="+1 305 555 0123", send_at="2026-03-02T10:00:00-05:00")
    response = api.post(URL, json=replay)
    assert response.status_code == 200
    assert response.get_json()["id"] == "appt-1001"
    assert stored(session) == 1


def test_same_id_with_a_different_body_is_409(api, session):
    api.enqueue()
    response = api.post(URL, json=reminder_body(send_at="2026-03-02T16:00:00Z"))
    assert response.status_code == 409
    assert "appt-1001" in response.get_json()["error"]
    assert stored(session) == 1


def test_the_same_id_in_another_practice_is_another_reminder(api, session):
    api.enqueue()
    api.enqueue(practice="split")
    assert stored(session) == 2


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"to": "12345"}, "to", "not a valid phone number"),
        ({"to": None}, "to", "required"),
        ({"to": "+44 20 7946 0958"}, "to", "landline"),
        ({"send_at": "2026-03-02T15:00:00"}, "send_at", "needs a UTC offset"),
        ({"send_at": "tomorrow at 3"}, "send_at", "RFC 3339"),
        ({"send_at": None}, "send_at", "required"),
        ({"expires_at": "2026-03-02T14:00:00Z"}, "expires_at", "must be after send_at"),
        ({"expires_at": "2026-03-02T15:00:00Z"}, "expires_at", "must be after send_at"),
        ({"template": "nope"}, "template", "unknown template"),
        ({"template": "stop"}, "template", "unknown template"),  # replies are not enqueued
        ({"template": "../help"}, "template", "unknown template"),
        ({"practice": "nope"}, "practice", "unknown practice"),
        ({"practice": None}, "practice", "required"),
        ({"params": {}}, "params.appointment_time", "required"),
        ({"params": {"appointment_time": "2026-03-03T14:30:00-05:00", "procedure": "x"}},
         "params.procedure", "unknown parameter"),
        ({"params": {"appointment_time": "2026-03-03 14:30"}}, "params.appointment_time",
         "needs a UTC offset"),
        ({"params": {"appointment_time": "2026-03-03T14:30:00Z", "location": ["a"]}},
         "params.location", "string or a number"),
        ({"params": {"appointment_time": "2026-03-03T14:30:00Z", "location": "x" * 201}},
         "params.location", "longer than 200"),
        ({"params": "appointment_time"}, "params", "must be an object"),
        ({"category": "promotional"}, "category", "must be one of"),
        ({"category": "marketing"}, "category", "is transactional"),
        ({"id": ""}, "id", "required"),
        ({"id": "has space"}, "id", "required"),
        ({"id": 42}, "id", "required"),
        ({"sendAt": "2026-03-02T15:00:00Z"}, "sendAt", "unknown field"),
    ],
)  # fmt: skip
def test_invalid_request_is_422_with_the_reason_and_stores_nothing(
    api, session, overrides, field, reason
):
    response = api.post(URL, json=reminder_body(**overrides))
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert reason in errors[field]
    assert stored(session) == 0


def test_every_problem_is_reported_at_once(api):
    response = api.post(URL, json=reminder_body(to="x", send_at="soon", template="nope"))
    assert set(response.get_json()["errors"]) == {"to", "send_at", "template"}


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"null"])
def test_a_body_that_is_not_a_json_object_is_rejected(api, body):
    response = api.post(URL, data=body, content_type="application/json")
    assert response.status_code in (400, 422)
    assert response.get_json()


def test_enqueue_needs_a_token(client, session):
    assert client.post(URL, json=reminder_body()).status_code == 401
    assert stored(session) == 0


def test_get_returns_the_state(api):
    api.enqueue()
    body = api.reminder()
    assert body["status"] == "scheduled"
    assert body["reason"] is None
    assert body["attempts"] == 0


def test_get_unknown_reminder_is_404(api):
    response = api.get(f"{URL}/nope", query_string={"practice": "shared"})
    assert response.status_code == 404


def test_get_in_the_wrong_practice_is_404(api):
    api.enqueue()
    response = api.get(f"{URL}/appt-1001", query_string={"practice": "split"})
    assert response.status_code == 404


def test_delete_cancels_a_scheduled_reminder_idempotently(api):
    api.enqueue()
    first = api.delete(f"{URL}/appt-1001", query_string={"practice": "shared"})
    assert first.status_code == 200
    assert first.get_json()["status"] == "cancelled"
    again = api.delete(f"{URL}/appt-1001", query_string={"practice": "shared"})
    assert again.status_code == 200
    assert api.reminder()["status"] == "cancelled"


def test_a_cancelled_reminder_is_never_sent(api, dispatcher, console):
    api.enqueue()
    api.delete(f"{URL}/appt-1001", query_string={"practice": "shared"})
    assert dispatcher.run_pass().claimed == 0
    assert console.sent == []


def test_delete_after_sending_is_409(api, dispatcher):
    api.enqueue()
    dispatcher.run_pass()
    response = api.delete(f"{URL}/appt-1001", query_string={"practice": "shared"})
    assert response.status_code == 409
    assert "sent" in response.get_json()["error"]
    assert api.reminder()["status"] == "sent"
