"""The API's request models and the 422 reasons they give (gateway.web.api.schemas), and the
enqueue request's fingerprint (gateway.core.reminder_request): pure, no app."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.core.domain import Category
from gateway.core.reminder_request import ReminderRequest
from gateway.web.api import schemas

REMINDER = {
    "id": "appt-1",
    "to": "(305) 555-0123",
    "send_at": "2026-03-02T15:00:00Z",
    "template": "appointment_reminder",
    "params": {"appointment_time": "2026-03-03T14:30:00-05:00"},
}


def errors_of(model: type, data: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return schemas.reasons(caught.value)


@pytest.mark.parametrize(
    ("model", "data", "expected"),
    [
        # the model's reason for a field, whatever pydantic's problem was
        (schemas.ReminderBody, {**REMINDER, "id": 42}, {"id": "required: 1-128 characters"}),
        (schemas.ReminderBody, {**REMINDER, "id": "a b"}, {"id": "required: 1-128"}),
        (schemas.ReminderBody, {k: v for k, v in REMINDER.items() if k != "to"},
         {"to": "required: the patient's phone number"}),
        (schemas.ReminderBody, {**REMINDER, "template": "stop"}, {"template": "unknown template"}),
        (schemas.ReminderBody, {**REMINDER, "params": []}, {"params": "must be an object"}),
        # the validator's own words
        (schemas.ReminderBody, {**REMINDER, "to": "12345"}, {"to": "not a valid phone number"}),
        (schemas.ReminderBody, {**REMINDER, "send_at": "2026-03-02T15:00"},
         {"send_at": "needs a UTC offset"}),
        (schemas.ReminderBody, {**REMINDER, "expires_at": "2026-03-02T15:00:00Z"},
         {"expires_at": "must be after send_at"}),
        (schemas.ReminderBody, {**REMINDER, "params": {"location": float("nan")}},
         {"params.location": "must be a finite number"}),
        (schemas.ReminderBody, {**REMINDER, "params": {"location": True}},
         {"params.location": "must be a string or a number"}),
        (schemas.ReminderBody, {**REMINDER, "params": {"location": "x" * 201}},
         {"params.location": "longer than 200 characters"}),
        # names the model does not have
        (schemas.ReminderBody, {**REMINDER, "sendAt": "x"}, {"sendAt": "unknown field"}),
        (schemas.ReminderBody, {**REMINDER, "params": {"procedure": "x"}},
         {"params.procedure": "unknown parameter"}),
        # the body itself
        (schemas.ReminderBody, [REMINDER], {"body": "must be a JSON object"}),
        # text no column can store
        (schemas.ReviewResolution, {"resolution": "dismiss", "staff": "ana\x00"},
         {"staff": "must not contain NUL characters"}),
        (schemas.ReviewResolution, {"resolution": "dismiss", "staff": "\ud800"},
         {"staff": "must not contain NUL characters or unpaired surrogates"}),
        # generic reasons
        (schemas.ReviewResolution, {"resolution": "dismiss", "staff": "x" * 129},
         {"staff": "longer than 128 characters"}),
        (schemas.ReviewResolution, {"resolution": "dismiss", "staff": "ana", "practice": 3},
         {"practice": "must be a string"}),
        (schemas.ContactUpdate, {"do_not_text": "yes"}, {"do_not_text": "must be true or false"}),
        (schemas.ContactUpdate, {"time_zone": "Mars/Base"}, {"time_zone": "unknown IANA"}),
        (schemas.ContactUpdate, {"guardian_phone": "305-555-0199 ext. 45"},
         {"guardian_phone": "extension"}),
        (schemas.ConsentChange, {"category": "marketing", "action": "opt_in", "channel": "phone",
                                 "staff": "ana"}, {"action": "double opt-in"}),
        (schemas.ConsentChange, {"category": "transactional", "action": "opt_out",
                                 "channel": "phone", "staff": "ana",
                                 "occurred_at": "2999-01-01T00:00:00Z"},
         {"occurred_at": "is in the future"}),
        (schemas.MarketingConsent, {"disclosure": " ", "page_url": "ftp://x", "ip": "1.2.3"},
         {"disclosure": "required: the consent text", "page_url": "http(s) URL",
          "ip": "IP address"}),
        (schemas.ReviewQuery, {"limit": "1" * 5000}, {"limit": "from 1 to 500"}),
        (schemas.ReviewQuery, {"limit": "0", "before": "-1"},
         {"limit": "from 1 to 500", "before": "from 1 to 2147483647"}),
        (schemas.EventQuery, {"status": "lost"}, {"status": "one of pending"}),
    ],
)  # fmt: skip
def test_each_field_gets_one_reason(model, data, expected):
    errors = errors_of(model, data)
    assert set(errors) == set(expected)
    for field, reason in expected.items():
        assert reason in errors[field]


def test_every_problem_of_a_body_is_reported_at_once():
    errors = errors_of(schemas.ReviewResolution, {"resolution": "x", "staff": " ", "extra": 1})
    assert set(errors) == {"resolution", "staff", "extra"}


def test_a_valid_reminder_is_normalised():
    body = schemas.ReminderBody.model_validate({**REMINDER, "params": {
        "appointment_time": "2026-03-03T14:30:00-05:00", "location": 12}})  # fmt: skip
    assert body.to == "+13055550123"
    assert body.send_at == datetime(2026, 3, 2, 15, tzinfo=UTC)
    assert body.category == "transactional"
    assert body.template_params() == {
        "appointment_time": "2026-03-03T19:30:00+00:00", "location": 12
    }  # fmt: skip


def test_of_a_repeated_query_parameter_the_first_counts():
    query = schemas.ReviewQuery.model_validate({"practice": ["shared", "split"], "limit": ["5"]})
    assert (query.practice, query.limit) == ("shared", 5)


def test_an_empty_query_parameter_counts_as_absent():
    query = schemas.EventQuery.model_validate({"practice": "", "status": "", "limit": ""})
    assert (query.practice, query.status, query.limit, query.before) == (None, None, 100, None)


@given(st.datetimes(timezones=st.timezones()))
def test_an_instant_with_an_offset_reads_back_as_the_same_instant(instant):
    try:
        expected = instant.astimezone(UTC)
    except OverflowError:
        return
    if instant.utcoffset() is None:
        return
    assert schemas.parse_instant(instant.isoformat()) == expected


@pytest.mark.parametrize(
    "text", ["tomorrow", "2026-03-02", "2026-03-02T15:00", "0001-01-01T00:00:00+01:00", 5]
)
def test_what_is_no_instant_with_an_offset_is_refused(text):
    with pytest.raises(ValueError):
        schemas.parse_instant(text)


REQUEST = ReminderRequest(
    external_id="appt-1", practice="shared", phone="+13055550123",
    send_at=datetime(2026, 3, 2, 15, tzinfo=UTC), expires_at=None,
    template="appointment_reminder", params={"appointment_time": "2026-03-03T19:30:00+00:00"},
    category=Category.TRANSACTIONAL,
)  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"external_id": "appt-2"},
        {"practice": "split"},
        {"phone": "+13055550124"},
        {"send_at": datetime(2026, 3, 2, 16, tzinfo=UTC)},
        {"expires_at": datetime(2026, 3, 3, tzinfo=UTC)},
        {"template": "practice_news"},
        {"params": {"appointment_time": "2026-03-03T19:31:00+00:00"}},
        {"category": Category.MARKETING},
    ],
)
def test_the_fingerprint_changes_with_every_field(change):
    assert replace(REQUEST, **change).fingerprint() != REQUEST.fingerprint()
    assert replace(REQUEST).fingerprint() == REQUEST.fingerprint()
