"""The dispatcher on the real (travelled) clock: sending windows across the 2026 DST changes in
America/New_York, a number in another zone, frequency caps, expiry, and marketing."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine

from conftest import PATIENT, SPLIT_MARKETING_SERVICE
from gateway.services.dispatch import Dispatcher

CHICAGO_PATIENT = "+13125550155"


@pytest.fixture
def dispatch(app, console):
    """One pass on the real clock (travelled by the test), one send at a time: two reminders to
    one number are then decided in claim order (``send_at``, then id), not in thread order."""
    return lambda: Dispatcher.from_app(app, owner="t", concurrency=1).run_pass()


def at(moment: str):
    return time_machine.travel(datetime.fromisoformat(moment), tick=False)


def enqueue(api, send_at, **overrides):
    body = {"send_at": send_at, "expires_at": None,
            "params": {"appointment_time": "2026-12-01T15:00:00Z"}}  # fmt: skip
    body.update(overrides)
    return api.enqueue(**body)


@pytest.mark.parametrize(
    ("evening", "opening"),
    [
        # Saturday 21:00 EST; the clocks spring forward that night: Sunday 08:00 EDT = 12:00 UTC
        ("2026-03-08T02:00:00+00:00", "2026-03-08T12:00:00Z"),
        # Saturday 21:00 EDT; the clocks fall back that night: Sunday 08:00 EST = 13:00 UTC
        ("2026-11-01T01:00:00+00:00", "2026-11-01T13:00:00Z"),
    ],
)
def test_an_evening_reminder_waits_for_8_am_across_the_dst_change(
    api, dispatch, console, evening, opening
):
    with at(evening):
        enqueue(api, evening)
        assert dispatch().deferred == 1
        reminder = api.reminder()
    assert reminder["status"] == "scheduled"
    assert reminder["next_attempt_at"] == opening
    assert reminder["reason"] == "outside the sending window 08:00-20:00 local time"
    just_before = datetime.fromisoformat(opening).timestamp() - 1
    with time_machine.travel(just_before, tick=False):
        assert dispatch().claimed == 0
    with at(opening):
        assert dispatch().sent == 1
    assert len(console.sent) == 1


def test_7_59_is_closed_and_8_00_open_the_morning_after_spring_forward(api, dispatch):
    with at("2026-03-08T11:59:00+00:00"):  # 07:59 EDT
        enqueue(api, "2026-03-08T11:59:00Z")
        assert dispatch().deferred == 1
    with at("2026-03-08T12:00:00+00:00"):  # 08:00 EDT
        assert dispatch().sent == 1


def test_the_same_utc_hour_is_open_after_the_change_and_closed_before(api, dispatch):
    with at("2026-03-06T12:30:00+00:00"):  # Friday 07:30 EST
        enqueue(api, "2026-03-06T12:30:00Z")
        assert dispatch().deferred == 1
    with at("2026-03-09T12:30:00+00:00"):  # Monday 08:30 EDT
        enqueue(api, "2026-03-09T12:30:00Z", id="appt-2", to="+13055550124")
        summary = dispatch()
    assert summary.sent == 2  # the deferred one (due since Friday 08:00) and the new one


def test_a_chicago_number_follows_its_own_clock(api, dispatch, console):
    with at("2026-03-02T13:30:00+00:00"):  # 08:30 in New York, 07:30 in Chicago
        enqueue(api, "2026-03-02T13:30:00Z", to=CHICAGO_PATIENT)
        assert dispatch().deferred == 1
        assert api.reminder()["next_attempt_at"] == "2026-03-02T14:00:00Z"  # 08:00 Chicago
    with at("2026-03-02T14:00:00+00:00"):
        assert dispatch().sent == 1
    assert console.sent[0][0].to == CHICAGO_PATIENT


def test_the_contacts_own_zone_wins_over_the_area_code(api, dispatch):
    api.patch(
        f"/api/v1/contacts/{PATIENT}",
        json={"practice": "shared", "time_zone": "America/Los_Angeles"},
    )
    with at("2026-03-02T15:00:00+00:00"):  # 10:00 in Miami, 07:00 in Los Angeles
        enqueue(api, "2026-03-02T15:00:00Z")
        assert dispatch().deferred == 1
        assert api.reminder()["next_attempt_at"] == "2026-03-02T16:00:00Z"


def test_one_care_text_a_day_without_express_consent(api, dispatch, console):
    with at("2026-03-02T15:00:00+00:00"):
        enqueue(api, "2026-03-02T15:00:00Z", id="appt-1")
        enqueue(api, "2026-03-02T15:00:00Z", id="appt-2")
        summary = dispatch()
        assert (summary.sent, summary.deferred) == (1, 1), (str(summary), api.reminder("appt-2"))
        assert api.reminder("appt-2")["next_attempt_at"] == "2026-03-03T15:00:00Z"
        assert api.reminder("appt-2")["reason"] == "frequency cap"
    with at("2026-03-03T15:00:00+00:00"):
        assert dispatch().sent == 1


def test_three_care_texts_a_week(api, dispatch):
    for day in (2, 3, 4):
        with at(f"2026-03-0{day}T15:00:00+00:00"):
            enqueue(api, f"2026-03-0{day}T15:00:00Z", id=f"appt-{day}")
            assert dispatch().sent == 1
    with at("2026-03-05T15:00:00+00:00"):
        enqueue(api, "2026-03-05T15:00:00Z", id="appt-5")
        assert dispatch().deferred == 1
        assert api.reminder("appt-5")["next_attempt_at"] == "2026-03-09T15:00:00Z"


def test_with_express_consent_the_care_caps_do_not_apply(api, dispatch):
    with at("2026-03-02T15:00:00+00:00"):
        api.post(f"/api/v1/contacts/{PATIENT}/consent", json={
            "practice": "shared", "category": "transactional", "action": "opt_in",
            "channel": "front_desk", "staff": "ana"})  # fmt: skip
        enqueue(api, "2026-03-02T15:00:00Z", id="appt-1")
        enqueue(api, "2026-03-02T15:00:00Z", id="appt-2")
        assert dispatch().sent == 2


def test_a_deferral_past_expiry_is_a_skip(api, dispatch, console):
    with at("2026-03-03T02:00:00+00:00"):  # 21:00 EST; expires before 08:00
        enqueue(api, "2026-03-03T02:00:00Z", expires_at="2026-03-03T12:00:00Z")
        assert dispatch().skipped == {"expired": 1}
    assert console.sent == []


def test_a_cap_with_no_slot_before_expiry_is_a_skip(api, dispatch):
    with at("2026-03-02T15:00:00+00:00"):
        enqueue(api, "2026-03-02T15:00:00Z", id="appt-1")
        enqueue(api, "2026-03-02T15:00:00Z", id="appt-2", expires_at="2026-03-02T20:00:00Z")
        summary = dispatch()
    assert summary.skipped == {"frequency_cap": 1}
    assert api.reminder("appt-2")["reason"] == "frequency_cap"


def marketing_opt_in(api, twilio):
    form = {"practice": "split", "disclosure": "I agree to marketing texts.", "ip": "203.0.113.9",
            "page_url": "https://split.example/offers", "adult_attested": True}  # fmt: skip
    assert api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=form).status_code == 202
    twilio.inbound("YES", to="+13125550199", MessagingServiceSid=SPLIT_MARKETING_SERVICE)


def news(api, n):
    return api.enqueue(id=f"news-{n}", practice="split", category="marketing", expires_at=None,
                       template="practice_news", send_at="2026-03-02T15:00:00Z",
                       params={"message": f"Spring open house, part {n}."})  # fmt: skip


def test_marketing_needs_the_confirmed_opt_in(api, twilio, dispatch):
    with at("2026-03-02T15:00:00+00:00"):
        news(api, 1)
        assert dispatch().skipped == {"no_consent": 1}


def test_marketing_goes_out_at_most_three_times_in_24_hours(api, twilio, dispatch, console):
    with at("2026-03-02T15:00:00+00:00"):
        marketing_opt_in(api, twilio)
        assert dispatch().sent == 1  # the "reply YES" confirmation itself
    with at("2026-03-02T16:00:00+00:00"):
        for n in range(4):
            news(api, n)
        summary = dispatch()
    # the confirmation counts as a marketing text: 2 more today, the rest tomorrow
    assert (summary.sent, summary.deferred) == (2, 2)
    assert all(sms.sender == SPLIT_MARKETING_SERVICE for sms, _ in console.sent)


def test_marketing_is_never_sent_to_a_minor(api, twilio, dispatch):
    with at("2026-03-02T15:00:00+00:00"):
        marketing_opt_in(api, twilio)
        dispatch()
        news(api, 1)
        # the birth date becomes known after enqueue: the send-time check still catches it
        birth = {"practice": "split", "date_of_birth": "2009-01-01"}
        api.patch(f"/api/v1/contacts/{PATIENT}", json=birth)
        assert dispatch().skipped == {"under_minimum_age": 1}  # split is 18+: nothing at all
        # and the enqueue itself is refused from now on
        response = api.post("/api/v1/reminders", json={
            "id": "news-9", "practice": "split", "category": "marketing", "to": PATIENT,
            "template": "practice_news", "send_at": "2026-03-02T15:00:00Z",
            "params": {"message": "Open house."}})  # fmt: skip
        assert response.status_code == 422


def test_the_do_not_text_reason_is_visible_over_the_api(api, dispatch):
    api.patch(f"/api/v1/contacts/{PATIENT}", json={"practice": "shared", "do_not_text": True})
    with at("2026-03-02T15:00:00+00:00"):
        enqueue(api, "2026-03-02T15:00:00Z")
        dispatch()
    reminder = api.reminder()
    assert (reminder["status"], reminder["reason"]) == ("skipped", "do_not_text")
