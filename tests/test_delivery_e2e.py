"""End to end over HTTP: the API enqueues, a dispatch pass sends through the real twilio SDK to a
local Twilio-compatible server, which posts signed status callbacks back to the gateway."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import time_machine
from sqlalchemy import select
from werkzeug.serving import make_server

from conftest import (
    API_TOKEN,
    AUTH_TOKEN,
    PATIENT,
    SHARED,
    Clock,
    inbound_params,
    patient,
    reminder_body,
)
from gateway.core import retry
from gateway.services import reconcile
from gateway.services.dispatch import Dispatcher
from gateway.store.models import Base, OutboundMessage, utcnow
from twilio_server import Delay, Hold, Reply, TwilioServer

ACCOUNT_SID = "AC" + "1" * 32


class LiveGateway:
    """The app served on loopback, configured to send through ``twilio``."""

    def __init__(self, app, url: str, twilio: TwilioServer) -> None:
        self.app, self.url, self.twilio = app, url, twilio
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {API_TOKEN}"

    def enqueue(self, **overrides) -> requests.Response:
        body = reminder_body(send_at=utcnow().isoformat(), expires_at=None, **overrides)
        return self.http.post(self.url + "/api/v1/reminders", json=body, timeout=60)

    def reminder(self, reminder_id: str = "appt-1001") -> dict:
        response = self.http.get(
            f"{self.url}/api/v1/reminders/{reminder_id}", params={"practice": "shared"}, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()

    def contact(self) -> dict:
        response = self.http.get(
            f"{self.url}/api/v1/contacts/{PATIENT}", params={"practice": "shared"}, timeout=60
        )
        return response.json()

    def text(self, body: str) -> requests.Response:
        from twilio.request_validator import RequestValidator

        params = inbound_params(body, to=SHARED)
        url = self.url + "/webhooks/twilio/inbound"
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        return requests.post(
            url, data=params, headers={"X-Twilio-Signature": signature}, timeout=60
        )

    def dispatcher(self, **kwargs) -> Dispatcher:
        return Dispatcher.from_app(self.app, **kwargs)


@pytest.fixture(autouse=True)
def daytime_in_miami():
    """Inside 08:00-20:00 in the patient's zone, whenever the suite runs; the clock still ticks."""
    with time_machine.travel(datetime(2026, 3, 2, 15, 0, tzinfo=UTC), tick=True):
        yield


@pytest.fixture
def twilio_server():
    with TwilioServer(ACCOUNT_SID, AUTH_TOKEN) as server:
        yield server


@pytest.fixture
def live(database_url, make_app, twilio_server):
    server = make_server("127.0.0.1", 0, None, threaded=True)  # bind first: the URL is config
    url = f"http://127.0.0.1:{server.server_port}"
    app = make_app(
        database_url, PUBLIC_BASE_URL=url, TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_API_BASE_URL=twilio_server.url,
    )  # fmt: skip
    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gateway = LiveGateway(app, url, twilio_server)
    yield gateway
    server.shutdown()
    server.server_close()
    thread.join(timeout=60)
    gateway.http.close()
    app.extensions["gateway.transport"].close()
    with app.extensions["gateway.db"].engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def test_enqueue_send_and_delivery_callback(live):
    assert live.enqueue().status_code == 201
    summary = live.dispatcher().run_pass()
    assert summary.sent == 1

    (message,) = live.twilio.messages
    assert message["to"] == PATIENT
    assert message["from"] == SHARED
    assert message["body"].startswith("Shared Line Clinic: reminder of your appointment")
    (request,) = live.twilio.requests
    assert request.form["StatusCallback"] == live.url + "/webhooks/twilio/status"
    assert live.reminder()["status"] == "sent"
    assert live.reminder()["provider_sid"] == message["sid"]

    assert live.twilio.send_status(message["sid"], "sent") == 204
    assert live.twilio.send_status(message["sid"], "delivered") == 204
    assert live.reminder()["status"] == "delivered"
    # a late, duplicated "sent" never moves it back
    assert live.twilio.send_status(message["sid"], "sent") == 204
    assert live.reminder()["status"] == "delivered"


def test_stop_between_enqueue_and_dispatch_sends_nothing(live):
    live.enqueue()
    assert "unsubscribed" in live.text("STOP").text
    summary = live.dispatcher().run_pass()
    assert summary.skipped == {"opted_out": 1}
    assert live.twilio.requests == []
    reminder = live.reminder()
    assert (reminder["status"], reminder["reason"]) == ("skipped", "opted_out")


def test_429_then_success_sends_exactly_one_message(live):
    live.twilio.script(Reply(429, code=20429, retry_after=120))
    live.enqueue()
    clock = Clock(utcnow())
    dispatcher = live.dispatcher(clock=clock)
    assert dispatcher.run_pass().retrying == 1
    reminder = live.reminder()
    assert (reminder["status"], reminder["error_code"], reminder["attempts"]) == (
        "scheduled", 20429, 1,
    )  # fmt: skip
    assert dispatcher.run_pass().claimed == 0  # not before Retry-After
    clock.advance(seconds=121)
    assert dispatcher.run_pass().sent == 1
    assert len(live.twilio.requests) == 2
    assert len(live.twilio.messages) == 1
    assert live.reminder()["status"] == "sent"


def test_server_errors_are_retried_until_the_budget_is_spent(live):
    live.twilio.script(*[Reply(503)] * retry.MAX_ATTEMPTS)
    live.enqueue()
    clock = Clock(utcnow())
    dispatcher = live.dispatcher(clock=clock)
    for _ in range(retry.MAX_ATTEMPTS):
        dispatcher.run_pass()
        clock.advance(minutes=61)  # past the longest backoff (1 h), still inside the day's window
    reminder = live.reminder()
    assert reminder["status"] == "failed"
    assert reminder["attempts"] == retry.MAX_ATTEMPTS
    assert reminder["reason"].startswith(f"gave up after {retry.MAX_ATTEMPTS} attempts")
    assert len(live.twilio.requests) == retry.MAX_ATTEMPTS
    assert live.twilio.messages == []


def _impatient_transport(live) -> None:
    live.app.extensions["gateway.transport"].close()
    from gateway.services.transport import TwilioTransport

    live.app.extensions["gateway.transport"] = TwilioTransport(
        ACCOUNT_SID, AUTH_TOKEN, api_base_url=live.twilio.url, timeout=0.3
    )


def _reconcile(live, now):
    app = live.app
    return reconcile.run(
        app.extensions["gateway.db"], app.extensions["gateway.settings"],
        app.extensions["gateway.transport"], now=now,
    )  # fmt: skip


def test_no_answer_is_looked_up_and_resent_only_if_twilio_never_took_it(live):
    _impatient_transport(live)
    live.twilio.script(Hold(then=Reply(500)))  # no answer in time, and nothing taken
    live.enqueue()
    clock = Clock(utcnow())
    dispatcher = live.dispatcher(clock=clock)
    assert dispatcher.run_pass().uncertain == 1
    live.twilio.release()
    assert live.reminder()["status"] == "uncertain"
    clock.advance(hours=1)
    assert dispatcher.run_pass().claimed == 0  # never resent blind
    assert _reconcile(live, clock()) == {"requeued": 1}
    assert dispatcher.run_pass().sent == 1
    assert live.reminder()["status"] == "sent"
    assert len(live.twilio.messages) == 1


def test_no_answer_for_a_message_twilio_took_is_found_not_resent(live):
    _impatient_transport(live)
    live.twilio.script(Hold())  # Twilio takes it, but only answers after the client gave up
    live.enqueue()
    clock = Clock(utcnow())
    dispatcher = live.dispatcher(clock=clock)
    assert dispatcher.run_pass().uncertain == 1
    live.twilio.release()
    hang_guard = time.monotonic() + 600
    while not live.twilio.messages and time.monotonic() < hang_guard:
        time.sleep(0.05)
    assert _reconcile(live, clock.advance(minutes=1)) == {"found": 1}
    reminder = live.reminder()
    assert reminder["status"] == "sent"
    clock.advance(hours=1)
    assert dispatcher.run_pass().claimed == 0
    assert len(live.twilio.messages) == 1
    # the status callback for it now finds the message
    assert live.twilio.deliver_all() == [204]
    assert live.reminder()["status"] == "delivered"


def test_a_lost_status_callback_is_reconciled(live):
    live.enqueue()
    clock = Clock(utcnow())
    assert live.dispatcher(clock=clock).run_pass().sent == 1
    (message,) = live.twilio.messages
    live.twilio.set_status(message["sid"], "undelivered", error_code=30003)  # no callback came
    assert _reconcile(live, clock.advance(minutes=5)) == {}  # not yet due
    assert _reconcile(live, clock.advance(minutes=15)) == {"completed": 1}
    reminder = live.reminder()
    assert (reminder["status"], reminder["error_code"]) == ("undelivered", 30003)


def test_21610_fails_without_retry_and_records_the_carrier_opt_out(live):
    live.twilio.script(Reply(400, code=21610))
    live.enqueue()
    assert live.dispatcher().run_pass().failed == 1
    reminder = live.reminder()
    assert (reminder["status"], reminder["error_code"]) == ("failed", 21610)
    consent = live.contact()["consent"]
    assert consent["transactional"]["status"] == "opted_out"
    assert consent["transactional"]["source"] == "carrier_error"
    live.enqueue(id="appt-1002")
    assert live.dispatcher().run_pass().skipped == {"opted_out": 1}
    assert len(live.twilio.requests) == 1


@pytest.mark.parametrize(("code", "reason"), [(21211, "invalid_number"), (21614, "not_mobile")])
def test_unreachable_number_errors_mark_the_contact(live, code, reason):
    live.twilio.script(Reply(400, code=code))
    live.enqueue()
    assert live.dispatcher().run_pass().failed == 1
    live.enqueue(id="appt-1002")
    assert live.dispatcher().run_pass().skipped == {reason: 1}
    assert len(live.twilio.requests) == 1


def test_racing_dispatchers_never_send_a_message_twice(live):
    live.twilio.latency = 0.005
    total = 60
    for n in range(total):
        assert live.enqueue(id=f"appt-{n}", to=patient(n)).status_code == 201
    dispatchers = [live.dispatcher(owner=f"d{i}", batch=7) for i in range(4)]
    barrier = threading.Barrier(len(dispatchers))
    errors: list[BaseException] = []

    def work(dispatcher: Dispatcher) -> None:
        try:
            barrier.wait()
            while dispatcher.run_pass().claimed:
                pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert errors == []
    assert len(live.twilio.messages) == total
    assert len(live.twilio.requests) == total
    with live.app.extensions["gateway.db"].sessions() as session:
        rows = session.scalars(select(OutboundMessage)).all()
    assert {row.status for row in rows} == {"sent"}
    assert len({row.provider_sid for row in rows}) == total
    assert {row.lease_owner for row in rows} == {None}
    owners = {r.form.get("Body") for r in live.twilio.requests}
    assert owners  # every request carried a body


def test_due_time_is_respected_over_http(live):
    later = (utcnow() + timedelta(minutes=5)).isoformat()
    body = reminder_body(send_at=later, expires_at=None)
    assert live.http.post(live.url + "/api/v1/reminders", json=body, timeout=60).status_code == 201
    assert live.dispatcher().run_pass().claimed == 0


def test_an_uncertain_message_never_takes_the_sid_of_an_identical_text_already_sent(live):
    """X: Twilio hangs past the client's timeout, then answers 503 (nothing taken). Y, the same
    text to the same number, is sent. Reconciling X must not take Y's SID (which would break the
    unique SID and stop every reconciliation after it): X goes back to the outbox."""
    assert "START" not in live.text("START").text  # explicit consent: no frequency caps
    _impatient_transport(live)
    live.twilio.script(Delay(1.0, then=Reply(503)))
    clock = Clock(utcnow() + timedelta(seconds=30))  # X and Y are both due
    dispatcher = live.dispatcher(clock=clock)
    assert live.enqueue(id="appt-x").status_code == 201
    assert dispatcher.run_pass().uncertain == 1
    time.sleep(1.0)  # Twilio's late 503: it never took X
    assert live.enqueue(id="appt-y").status_code == 201
    assert dispatcher.run_pass().sent == 1
    (y,) = live.twilio.messages
    assert live.reminder("appt-y")["provider_sid"] == y["sid"]
    assert live.reminder("appt-y")["status"] == "sent"

    assert _reconcile(live, clock.advance(minutes=5)) == {"requeued": 1}
    x = live.reminder("appt-x")
    assert (x["status"], x["provider_sid"]) == ("scheduled", None)
    assert live.reminder("appt-y")["provider_sid"] == y["sid"]


def test_reconciliation_prefers_the_closest_unrecorded_message(live):
    """Two identical texts at Twilio, one recorded for Y: the uncertain X takes the other one."""
    assert "START" not in live.text("START").text
    _impatient_transport(live)
    clock = Clock(utcnow() + timedelta(seconds=30))  # X and Y are both due
    dispatcher = live.dispatcher(clock=clock)
    live.twilio.script(Delay(1.0))  # Twilio takes X, the answer comes too late
    assert live.enqueue(id="appt-x").status_code == 201
    assert dispatcher.run_pass().uncertain == 1
    deadline = time.monotonic() + 5
    while not live.twilio.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.enqueue(id="appt-y").status_code == 201
    assert dispatcher.run_pass().sent == 1
    x_sid, y_sid = (m["sid"] for m in live.twilio.messages)
    assert live.reminder("appt-y")["provider_sid"] == y_sid  # the newest on Twilio's list

    assert _reconcile(live, clock.advance(minutes=5)) == {"found": 1}
    assert live.reminder("appt-x")["provider_sid"] == x_sid
    assert live.reminder("appt-x")["status"] == "sent"


def test_one_message_that_fails_to_reconcile_does_not_stop_the_others(live):
    """A lookup that fails unexpectedly for one message: the next ones are still reconciled."""
    from gateway.services.transport import TwilioTransport

    class Flaky(TwilioTransport):
        calls = 0

        def find(self, *args, **kwargs):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("a bug in one row")
            return super().find(*args, **kwargs)

    live.app.extensions["gateway.transport"].close()
    live.app.extensions["gateway.transport"] = Flaky(
        ACCOUNT_SID, AUTH_TOKEN, api_base_url=live.twilio.url, timeout=0.3
    )
    live.twilio.script(Delay(1.0, then=Reply(503)), Delay(1.0, then=Reply(503)))
    clock = Clock(utcnow() + timedelta(seconds=30))  # X and Y are both due
    dispatcher = live.dispatcher(clock=clock, concurrency=1)
    for n in range(2):
        assert live.enqueue(id=f"appt-{n}", to=patient(n)).status_code == 201
    assert dispatcher.run_pass().uncertain == 2
    assert _reconcile(live, clock.advance(minutes=5)) == {"failed": 1, "requeued": 1}
    assert _reconcile(live, clock.advance(minutes=10)) == {"requeued": 1}
