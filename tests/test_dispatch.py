"""The dispatch pass on the console transport: what is due is decided at send time and sent once."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from conftest import PATIENT, SHARED, SPLIT_TRANSACTIONAL, patient
from gateway.core.domain import Action, Category, Source
from gateway.services import consent
from gateway.services.dispatch import Dispatcher
from gateway.store import contacts, outbox
from gateway.store.models import OutboundMessage


def test_a_due_reminder_is_sent_with_the_rendered_text(api, dispatcher, console):
    api.enqueue()
    summary = dispatcher.run_pass()
    assert (summary.claimed, summary.sent) == (1, 1)
    ((sms, result),) = console.sent
    assert sms.to == PATIENT
    assert sms.sender == SHARED
    assert sms.body == (
        "Shared Line Clinic: reminder of your appointment on Tue, Mar 3 at 2:30 PM. "
        "Questions: +1 786-305-8649. Reply STOP to opt out."
    )
    assert sms.status_callback == "https://gateway.example.test/webhooks/twilio/status"
    reminder = api.reminder()
    assert reminder["status"] == "sent"
    assert reminder["provider_sid"] == result.sid
    assert reminder["attempts"] == 1
    assert PATIENT in console.stream.getvalue()


def test_the_text_uses_the_practices_time_zone(api, dispatcher, console):
    api.enqueue(practice="split", params={"appointment_time": "2026-03-03T19:30:00Z"})
    dispatcher.run_pass()
    ((sms, _),) = console.sent
    assert sms.sender == SPLIT_TRANSACTIONAL
    assert "on Tue, Mar 3 at 1:30 PM" in sms.body  # America/Chicago


def test_the_location_is_included_when_given(api, dispatcher, console):
    params = {"appointment_time": "2026-03-03T19:30:00Z", "location": "Suite 200"}
    api.enqueue(params=params)
    dispatcher.run_pass()
    assert "at 2:30 PM at Suite 200." in console.sent[0][0].body


def test_a_reminder_not_yet_due_is_left_alone(api, dispatcher, console, clock):
    api.enqueue(send_at="2026-03-02T16:00:00Z")
    assert dispatcher.run_pass().claimed == 0
    clock.now = clock.now.replace(hour=16)
    assert dispatcher.run_pass().sent == 1


def test_a_stop_after_enqueue_wins(api, twilio, dispatcher, console):
    api.enqueue()
    twilio.inbound("STOP")
    summary = dispatcher.run_pass()
    assert summary.skipped == {"opted_out": 1}
    assert console.sent == []
    reminder = api.reminder()
    assert (reminder["status"], reminder["reason"]) == ("skipped", "opted_out")


def test_start_after_stop_lets_reminders_through_again(api, twilio, dispatcher, console):
    twilio.inbound("STOP")
    twilio.inbound("START")
    api.enqueue()
    assert dispatcher.run_pass().sent == 1


def test_stop_to_the_marketing_service_does_not_stop_reminders(api, twilio, dispatcher):
    twilio.inbound("STOP", to="+13125550199", MessagingServiceSid="MG" + "0123456789abcdef" * 2)
    api.enqueue(practice="split")
    assert dispatcher.run_pass().sent == 1


def test_an_expired_reminder_is_skipped_never_sent_late(api, dispatcher, console, clock):
    api.enqueue(expires_at="2026-03-02T15:00:10Z")
    summary = dispatcher.run_pass()
    assert summary.skipped == {"expired": 1}
    assert console.sent == []
    assert api.reminder()["reason"] == "expired"


def test_the_contacts_language_picks_the_template(api, twilio, dispatcher, console):
    twilio.inbound("AYUDA")
    api.enqueue()
    dispatcher.run_pass()
    assert console.sent[0][0].body.startswith(
        "Shared Line Clinic: le recordamos su cita el martes 3 de marzo a las 14:30."
    )


def test_a_number_marked_unreachable_is_skipped(app, api, dispatcher, console):
    with app.extensions["gateway.db"].sessions() as session:
        contacts.upsert(
            session, "shared", PATIENT, unreachable="not_mobile", unreachable_code=30006
        )
        session.commit()
    api.enqueue()
    assert dispatcher.run_pass().skipped == {"not_mobile": 1}
    assert console.sent == []


def test_a_staff_revocation_recorded_after_enqueue_wins(app, api, dispatcher, console):
    api.enqueue()
    with app.extensions["gateway.db"].sessions() as session:
        consent.record(session, practice="shared", phone=PATIENT, category=Category.TRANSACTIONAL,
                       action=Action.OPT_OUT, source=Source.STAFF)  # fmt: skip
        session.commit()
    assert dispatcher.run_pass().skipped == {"opted_out": 1}


def test_each_message_is_sent_once_over_many_passes(api, dispatcher, console, clock):
    for n in range(5):
        api.enqueue(id=f"appt-{n}", to=patient(n))
    for _ in range(3):
        dispatcher.run_pass()
        clock.advance(minutes=5)
    assert len(console.sent) == 5
    assert len({sms.to for sms, _ in console.sent}) == 5


def test_the_batch_size_bounds_a_pass(app, api, console, clock):
    for n in range(5):
        api.enqueue(id=f"appt-{n}", to=patient(n))
    dispatcher = Dispatcher.from_app(app, clock=clock, batch=2)
    assert [dispatcher.run_pass().sent for _ in range(4)] == [2, 2, 1, 0]


def test_an_expired_lease_without_a_started_send_is_requeued(app, api, session, clock):
    api.enqueue()
    outbox.claim_due(session, now=clock(), owner="dead", lease=timedelta(minutes=2), limit=10)
    assert outbox.release_expired_leases(session, clock.advance(minutes=1)) == {
        "requeued": 0, "uncertain": 0,
    }  # fmt: skip
    assert outbox.release_expired_leases(session, clock.advance(minutes=2)) == {
        "requeued": 1, "uncertain": 0,
    }  # fmt: skip
    assert api.reminder()["status"] == "scheduled"


def test_an_expired_lease_with_a_started_send_becomes_uncertain(app, api, session, clock):
    from gateway.core.domain import OutboxStatus

    api.enqueue()
    (message,) = outbox.claim_due(
        session, now=clock(), owner="dead", lease=timedelta(minutes=2), limit=10
    )
    outbox.transition(session, message.id, OutboxStatus.SENDING, send_started_at=clock())
    session.commit()
    counts = outbox.release_expired_leases(session, clock.advance(minutes=3))
    assert counts == {"requeued": 0, "uncertain": 1}
    reminder = api.reminder()
    assert reminder["status"] == "uncertain"
    assert "check with Twilio" in reminder["reason"]


def test_a_dispatcher_that_lost_its_lease_does_not_send(app, api, session, console, clock):
    api.enqueue()
    slow = Dispatcher.from_app(app, clock=clock, owner="slow")
    (message,) = outbox.claim_due(session, now=clock(), owner="slow", lease=timedelta(seconds=1),
                                  limit=10)  # fmt: skip
    outbox.release_expired_leases(session, clock.advance(seconds=5))
    fast = Dispatcher.from_app(app, clock=clock, owner="fast")
    assert fast.run_pass().sent == 1
    assert fast.run_pass().claimed == 0
    stale = slow.process([message])  # the slow one wakes up with its stale claim
    assert (stale.claimed, stale.sent, sum(stale.skipped.values())) == (1, 0, 0)
    assert len(console.sent) == 1


def test_flask_dispatch_command_prints_a_summary(app, api, console, clock):
    api.enqueue(send_at="2020-01-01T00:00:00Z", expires_at=None)
    with time_machine.travel(clock.now, tick=False):  # the command uses the real clock
        result = app.test_cli_runner().invoke(args=["dispatch"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output.strip() == (
        "claimed 1: sent 1, skipped 0, deferred 0, retrying 0, failed 0"
    )


def test_stored_times_stay_utc(api, dispatcher, session, clock):
    api.enqueue()
    dispatcher.run_pass()
    message = session.scalar(select(OutboundMessage))
    assert message.sent_at == clock()
    assert message.sent_at.utcoffset() == timedelta(0)
