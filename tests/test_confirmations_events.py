"""Appointment confirmations by reply, and signed event webhooks to the scheduling system.

Black-box: reminders go in through the API and out through a dispatch pass (console transport),
patients answer through the signed inbound webhook, Twilio's status callbacks through the signed
status webhook, and events arrive at a local receiver (a real HTTP server on loopback) that checks
every signature with the ``standardwebhooks`` package, as an integrator would.
"""

from __future__ import annotations

import base64
import io
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from console_support import PASSWORD, sign_in, text_of
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.serving import make_server

from conftest import API_TOKEN, AUTH_TOKEN, TwilioActions, get_database_of, patient
from gateway import config
from gateway.core import confirmations, gsm7, keywords
from gateway.core.confirmations import Candidate, Response
from gateway.core.keywords import Intent
from gateway.services import reconcile, reminders, scheduler
from gateway.services.dispatch import Dispatcher
from gateway.services.event_delivery import EventDeliverer
from gateway.services.transport import ConsoleTransport, TwilioTransport
from gateway.store import accounts, event_outbox
from gateway.store.models import Base
from tcp_proxy import TcpProxy
from twilio_server import Delay, TwilioServer

SECRET = "whsec_" + base64.b64encode(b"scheduling-system-secret-0123456789").decode()
CLINIC = "+17865550130"  # the clinic's transactional sender
CLINIC_MARKETING = "+17865550131"
PLAIN = "+17865550140"  # a practice without confirmations or events
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in Miami, a Monday
APPOINTMENT = "2026-03-03T14:30:00-05:00"  # Tue, Mar 3 at 2:30 PM in Miami

PRACTICES = """
[practices.clinic]
name = "Harbor Clinic"
time_zone = "America/New_York"
help_contact = "+1 305-555-0199"
confirmations = true

[practices.clinic.senders]
transactional = "{clinic}"
marketing = "{marketing}"

[practices.clinic.rate_limit]
transactional = 0
marketing = 0

[practices.clinic.events]
url = "{url}"
secret = "{secret}"

[practices.plain]
name = "Plain Clinic"
time_zone = "America/New_York"
help_contact = "+1 305-555-0177"

[practices.plain.senders]
transactional = "{plain}"

[practices.plain.rate_limit]
transactional = 0
"""


# --- the receiver --------------------------------------------------------------------------------


class Receiver:
    """The scheduling system's event endpoint: records every request, answers ``status``."""

    def __init__(self) -> None:
        self.status = 204
        #: (headers, body, the status answered, the payload if its signature checked out)
        self.requests: list[tuple[dict[str, str], bytes, int, Any]] = []
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/gateway"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        try:  # as an integrator checks it: on arrival, against the clock
            payload = Webhook(SECRET).verify(body, headers)
        except WebhookVerificationError:
            payload = None
        with self._lock:
            status = self.status
            self.requests.append((headers, body, status, payload))
        start_response(f"{status} Status", [("Content-Length", "0")])
        return [b""]

    def verified(self) -> list[tuple[str, dict[str, Any]]]:
        """(webhook-id, payload) of every request answered 2xx; every signature checked out."""
        assert all(payload is not None for _, _, _, payload in self.requests)
        return [
            (headers["webhook-id"], payload)
            for headers, _, status, payload in self.requests
            if 200 <= status < 300
        ]

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _, _, _ in self.requests]


@pytest.fixture
def receiver():
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join(timeout=10)


@pytest.fixture
def traveller():
    with time_machine.travel(START, tick=True) as travel:
        yield travel


@contextmanager
def serving(make_app: Any, database_url: str, tmp_path: Any, receiver: Receiver, url: str):
    """The gateway, its practices file sending the clinic's events to ``url``."""
    practices = tmp_path / "practices.toml"
    practices.write_text(
        PRACTICES.format(clinic=CLINIC, marketing=CLINIC_MARKETING, plain=PLAIN, url=url,
                         secret=SECRET)
    )  # fmt: skip
    app = make_app(database_url, GATEWAY_CONFIG=str(practices))
    console = ConsoleTransport(stream=io.StringIO())
    app.extensions["gateway.transport"] = console
    try:
        yield Gateway(app, console, receiver)
    finally:
        with get_database_of(app).engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture
def gateway(database_url, make_app, receiver, tmp_path, traveller):
    with serving(make_app, database_url, tmp_path, receiver, receiver.url) as served:
        yield served


class Gateway:
    def __init__(self, app: Any, console: ConsoleTransport, receiver: Receiver) -> None:
        self.app, self.console, self.receiver = app, console, receiver
        self.client = app.test_client()
        self.twilio = TwilioActions(self.client)
        self.headers = {"Authorization": f"Bearer {API_TOKEN}"}
        self.dispatcher = Dispatcher.from_app(app, owner="test")
        self.deliverer = EventDeliverer(
            app.extensions["gateway.db"], app.extensions["gateway.settings"], owner="test"
        )

    def remind(self, reminder_id: str, appointment: str = APPOINTMENT, *,
               to: str = patient(1), practice: str = "clinic", **extra: Any) -> str:
        """Enqueue a reminder due now and send it; returns the text sent."""
        body = {"id": reminder_id, "practice": practice, "to": to,
                "send_at": datetime.now(UTC).isoformat(), "template": "appointment_reminder",
                "params": {"appointment_time": appointment, **extra}}  # fmt: skip
        response = self.client.post("/api/v1/reminders", json=body, headers=self.headers)
        assert response.status_code == 201, response.get_json()
        before = len(self.console.sent)
        self.dispatcher.run_pass()
        assert len(self.console.sent) == before + 1, self.reminder(reminder_id, practice)
        return self.console.sent[-1][0].body

    def reminder(self, reminder_id: str, practice: str = "clinic") -> dict[str, Any]:
        response = self.client.get(
            f"/api/v1/reminders/{reminder_id}", query_string={"practice": practice},
            headers=self.headers,
        )  # fmt: skip
        assert response.status_code == 200
        return response.get_json()

    def text(self, body: str, *, from_: str = patient(1), to: str = CLINIC) -> list[str]:
        """The patient texts ``body``; returns the replies."""
        response = self.twilio.inbound(body, from_=from_, to=to)
        assert response.status_code == 200, response.get_data(as_text=True)
        root = ET.fromstring(response.get_data(as_text=True))
        return [m.text or "" for m in root.iter("Message")]

    def status(self, sid: str, status: str, **extra: str) -> None:
        params = {
            "MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "1" * 32,
            "From": CLINIC, "To": patient(1), "ApiVersion": "2010-04-01", **extra,
        }  # fmt: skip
        assert self.twilio.post("/webhooks/twilio/status", params).status_code == 204

    def events(self, **query: str) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/events", query_string={"practice": "clinic", **query},
                                   headers=self.headers)  # fmt: skip
        assert response.status_code == 200, response.get_json()
        return response.get_json()["items"]


def language(gateway: Gateway, phone: str, lang: str) -> None:
    response = gateway.client.patch(f"/api/v1/contacts/{phone}", headers=gateway.headers,
                                    json={"practice": "clinic", "language": lang})  # fmt: skip
    assert response.status_code == 200, response.get_json()


# --- the invitation ------------------------------------------------------------------------------


def test_reminders_invite_c_or_r_and_stay_within_160_characters(gateway):
    text = gateway.remind("appt-1", location="Harbor Medical Plaza, Suite 2100, 1500 Biscayne Blvd")
    assert text.endswith("Reply C to confirm, R to reschedule.")
    assert len(text) <= 160
    for kept in ("Harbor Clinic", "Tue", "2:30 PM", "+1 305-555-0199", "Reply STOP to opt out."):
        assert kept in text
    assert "Biscayne" not in text  # the location gave way

    language(gateway, patient(2), "es")
    text = gateway.remind("appt-2", to=patient(2))
    assert text.endswith("Responda C para confirmar, R para cambiar la cita.")
    assert len(text) <= 160
    for kept in ("Harbor Clinic", "14:30", "+1 305-555-0199", "Responda PARAR para cancelar."):
        assert kept in text


def test_practices_without_confirmations_send_no_invitation(gateway):
    text = gateway.remind("plain-1", practice="plain", to=patient(3))
    assert "Reply C" not in text
    assert gateway.text("C", from_=patient(3), to=PLAIN) == []
    assert gateway.reminder("plain-1", "plain")["response"] is None


# --- answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["C", "c", " Confirm ", "CONFIRMED!", "confirmed, thanks", "👍 C"])
def test_confirm_in_english(gateway, body):
    gateway.remind("appt-1")
    (reply,) = gateway.text(body)
    assert reply == ("Harbor Clinic: thank you, your appointment on Tue, Mar 3 at 2:30 PM is "
                     "confirmed. Questions: +1 305-555-0199.")  # fmt: skip
    reminder = gateway.reminder("appt-1")
    assert reminder["response"] == "confirmed"
    assert reminder["responded_at"] is not None


@pytest.mark.parametrize("body", ["R", "reschedule", "Reschedule please"])
def test_reschedule_in_english(gateway, body):
    gateway.remind("appt-1")
    (reply,) = gateway.text(body)
    assert "the office will contact you to reschedule" in reply
    assert "on Tue, Mar 3 at 2:30 PM" in reply
    assert gateway.reminder("appt-1")["response"] == "reschedule_requested"


@pytest.mark.parametrize(
    ("body", "contact_language", "expected", "response"),
    [
        ("C", "es", "su cita el martes 3 de marzo a las 14:30 está confirmada", "confirmed"),
        ("Confirmó", None, "está confirmada", "confirmed"),
        ("CONFIRMADO", None, "está confirmada", "confirmed"),
        ("R", "es", "la oficina le contactará para cambiar su cita el martes 3 de marzo",
         "reschedule_requested"),
        ("cambiar", None, "la oficina le contactará", "reschedule_requested"),
        ("Reprogramar por favor", None, "la oficina le contactará", "reschedule_requested"),
    ],
)
def test_answers_in_spanish(gateway, body, contact_language, expected, response):
    if contact_language:
        language(gateway, patient(1), contact_language)
    gateway.remind("appt-1")
    (reply,) = gateway.text(body)
    assert reply.startswith("Harbor Clinic: gracias,")
    assert expected in reply
    assert gateway.reminder("appt-1")["response"] == response


def test_an_answer_without_a_reminder_goes_the_ordinary_way(gateway):
    assert gateway.text("C") == []
    gateway.remind("appt-1", to=patient(2))  # another patient's reminder answers nothing here
    assert gateway.text("C") == []
    assert gateway.reminder("appt-1")["response"] is None


def test_of_two_reminders_ahead_the_latest_answers(gateway, traveller):
    gateway.remind("appt-later", "2026-03-12T10:00:00-04:00")
    traveller.shift(timedelta(days=1))  # the next day: one reminder a day without express consent
    gateway.remind("appt-soon", "2026-03-04T09:00:00-05:00")
    (reply,) = gateway.text("C")
    assert "Wed, Mar 4 at 9:00 AM" in reply
    assert gateway.reminder("appt-soon")["response"] == "confirmed"
    assert gateway.reminder("appt-later")["response"] is None


def test_a_reply_after_the_appointment_answers_nothing(gateway, traveller):
    gateway.remind("appt-1", "2026-03-02T12:00:00-05:00")  # 17:00 UTC, two hours ahead
    traveller.shift(timedelta(hours=2, minutes=1))
    assert gateway.text("C") == []
    assert gateway.reminder("appt-1")["response"] is None


def test_a_changed_answer_replaces_the_first(gateway):
    gateway.remind("appt-1")
    gateway.text("C")
    gateway.text("R")
    assert gateway.reminder("appt-1")["response"] == "reschedule_requested"


def test_cancel_stays_an_opt_out(gateway):
    gateway.remind("appt-1")
    (reply,) = gateway.text("CANCEL")
    assert "Reply START" in reply or "START" in reply
    assert gateway.reminder("appt-1")["response"] is None
    response = gateway.client.get(f"/api/v1/contacts/{patient(1)}", headers=gateway.headers,
                                  query_string={"practice": "clinic"})  # fmt: skip
    assert response.get_json()["consent"]["transactional"]["status"] == "opted_out"


def test_a_duplicate_delivery_of_the_answer_records_it_once(gateway):
    gateway.remind("appt-1")
    params = {"MessageSid": "SM" + "a" * 32}
    first = gateway.twilio.inbound("C", from_=patient(1), to=CLINIC, sid=params["MessageSid"])
    again = gateway.twilio.inbound("C", from_=patient(1), to=CLINIC, sid=params["MessageSid"])
    assert first.get_data() == again.get_data()
    assert [e["type"] for e in gateway.events()].count("appointment.confirmed") == 1


# --- events --------------------------------------------------------------------------------------


def test_each_event_type_arrives_once_with_a_valid_signature(gateway, traveller):
    # reminder.sent, then reminder.delivered
    gateway.remind("appt-1", to=patient(1))
    delivered_sid = gateway.reminder("appt-1")["provider_sid"]
    gateway.status(delivered_sid, "delivered")
    gateway.status(delivered_sid, "read")  # a later status of a delivered message: no new event
    # appointment.confirmed and appointment.reschedule_requested
    gateway.remind("appt-2", to=patient(2))
    gateway.text("C", from_=patient(2))
    gateway.text("C", from_=patient(2))  # the same answer again: no new event
    gateway.remind("appt-3", to=patient(3))
    gateway.text("R", from_=patient(3))
    # reminder.failed (undelivered, with the carrier's error code)
    gateway.remind("appt-4", to=patient(4))
    gateway.status(gateway.reminder("appt-4")["provider_sid"], "undelivered", ErrorCode="30003")
    # reminder.skipped: the patient opted out first (consent.changed)
    assert gateway.text("STOP", from_=patient(5))
    assert gateway.text("STOP", from_=patient(5)) == []  # no change: no second event
    body = {"id": "appt-5", "practice": "clinic", "to": patient(5), "template":
            "appointment_reminder", "send_at": datetime.now(UTC).isoformat(),
            "params": {"appointment_time": APPOINTMENT}}  # fmt: skip
    assert gateway.client.post("/api/v1/reminders", json=body,
                               headers=gateway.headers).status_code == 201  # fmt: skip
    gateway.dispatcher.run_pass()
    assert gateway.reminder("appt-5")["status"] == "skipped"
    # nothing for a practice without [events]
    gateway.remind("plain-1", practice="plain", to=patient(6))

    assert gateway.deliverer.drain()["delivered"] == 10
    received = gateway.receiver.verified()
    ids = [webhook_id for webhook_id, _ in received]
    assert len(ids) == len(set(ids))  # each once
    types = Counter(payload["type"] for _, payload in received)
    assert types == {
        "reminder.sent": 4, "reminder.delivered": 1, "reminder.failed": 1,
        "reminder.skipped": 1, "appointment.confirmed": 1,
        "appointment.reschedule_requested": 1, "consent.changed": 1,
    }  # fmt: skip
    by_type = {payload["type"]: payload for _, payload in received}
    for _, payload in received:
        assert set(payload) == {"type", "timestamp", "data"}
        assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert by_type["reminder.delivered"]["data"]["reminder_id"] == "appt-1"
    assert by_type["reminder.delivered"]["data"]["to"] == patient(1)
    assert by_type["reminder.failed"]["data"]["error_code"] == 30003
    assert by_type["reminder.failed"]["data"]["status"] == "undelivered"
    assert by_type["reminder.skipped"]["data"]["reason"] == "opted_out"
    confirmed = by_type["appointment.confirmed"]["data"]
    assert (confirmed["reminder_id"], confirmed["to"]) == ("appt-2", patient(2))
    assert datetime.fromisoformat(confirmed["appointment_time"]) == datetime.fromisoformat(
        APPOINTMENT
    )
    assert by_type["appointment.reschedule_requested"]["data"]["reminder_id"] == "appt-3"
    (consent,) = [p["data"] for _, p in received if p["type"] == "consent.changed"]
    assert consent["phone"] == patient(5)
    assert (consent["category"], consent["status"], consent["previous_status"],
            consent["source"]) == ("transactional", "opted_out", "implied", "keyword")  # fmt: skip
    # a tampered body fails the check
    headers, body_bytes, _, _ = gateway.receiver.requests[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body_bytes + b" ", headers)
    assert gateway.events(status="pending") == []
    assert failing_deliveries(gateway) == 0


def failing_deliveries(gateway: Gateway) -> float:
    """``gateway_event_deliveries_failing{state="retrying"}`` for the clinic, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    response = gateway.app.test_client().get(
        "/metrics", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == "gateway_event_deliveries_failing" and sample.labels == {
                "practice": "clinic", "state": "retrying"
            }:  # fmt: skip
                return sample.value
    return 0.0
    assert len(gateway.events(status="delivered")) == 10


def test_a_receiver_down_for_an_hour_gets_everything_afterwards(gateway, traveller):
    receiver = gateway.receiver
    receiver.status = 503
    gateway.remind("appt-1")
    gateway.text("C")
    gateway.text("STOP", from_=patient(2))
    assert gateway.deliverer.drain() == {"retrying": 3}
    first_ids = set(receiver.ids())
    assert len(first_ids) == 3
    traveller.shift(timedelta(seconds=6))
    assert gateway.deliverer.drain() == {"retrying": 3}
    for wait in (timedelta(minutes=5), timedelta(minutes=30)):  # down for the next hour
        traveller.shift(wait + timedelta(seconds=1))
        assert gateway.deliverer.drain() == {"retrying": 3}
    assert all(e["attempts"] == 4 and e["last_status_code"] == 503 for e in gateway.events())
    assert failing_deliveries(gateway) == 3  # what an operator's alert watches
    traveller.shift(timedelta(minutes=30))
    assert gateway.deliverer.drain() == {}  # the next attempt is two hours after the last
    receiver.status = 200
    traveller.shift(timedelta(hours=1, minutes=31))
    assert gateway.deliverer.drain() == {"delivered": 3}
    delivered = receiver.verified()
    assert {webhook_id for webhook_id, _ in delivered} == first_ids  # same ids, nothing lost
    assert len(delivered) == 3
    assert Counter(receiver.ids()) == {webhook_id: 5 for webhook_id in first_ids}
    assert failing_deliveries(gateway) == 0
    assert gateway.events(status="pending") == []


def test_a_receiver_that_refuses_connections_loses_nothing(
    database_url, make_app, receiver, tmp_path, traveller
):
    port = int(receiver.url.split(":")[2].split("/")[0])
    with TcpProxy(("127.0.0.1", port)) as proxy:
        url = receiver.url.replace(f":{port}/", f":{proxy.port}/")
        with serving(make_app, database_url, tmp_path, receiver, url) as gateway:
            proxy.cut()  # the host is down: connections reset or refused
            gateway.text("STOP", from_=patient(2))
            gateway.text("START", from_=patient(2))
            assert gateway.deliverer.drain() == {"retrying": 2}
            assert receiver.requests == []
            assert {e["last_error"] for e in gateway.events()} == {
                "no answer: ConnectionError"
            }
            proxy.restore()
            traveller.shift(timedelta(seconds=6))
            assert gateway.deliverer.drain() == {"delivered": 2}
            delivered = receiver.verified()
            # in any order (sent in parallel): receivers order by `timestamp`
            assert sorted(p["data"]["status"] for _, p in delivered) == ["opted_in", "opted_out"]
            assert {i for i, _ in delivered} == {e["id"] for e in gateway.events()}


def test_a_receiver_back_up_gets_the_backlog_with_the_next_event(gateway, traveller):
    gateway.receiver.status = 500
    gateway.text("STOP", from_=patient(2))
    gateway.text("STOP", from_=patient(3))
    assert gateway.deliverer.drain() == {"retrying": 2}
    gateway.receiver.status = 200
    gateway.text("STOP", from_=patient(4))  # a new event, delivered at once...
    assert gateway.deliverer.run_pass() == {"delivered": 1}
    assert gateway.deliverer.run_pass() == {"delivered": 2}  # ...brings the others forward
    assert len(gateway.receiver.verified()) == 3


def test_a_failed_event_is_retried_on_request_with_the_same_id(gateway, traveller):
    gateway.receiver.status = 500
    gateway.text("STOP", from_=patient(2))
    for attempt in range(event_outbox.MAX_ATTEMPTS):
        outcome = gateway.deliverer.drain()
        assert outcome == ({"failed": 1} if attempt == event_outbox.MAX_ATTEMPTS - 1
                           else {"retrying": 1})  # fmt: skip
        if attempt < len(event_outbox.RETRY_DELAYS):
            traveller.shift(event_outbox.RETRY_DELAYS[attempt] + timedelta(seconds=1))
    (failed,) = gateway.events(status="failed")
    assert failed["attempts"] == event_outbox.MAX_ATTEMPTS
    assert failed["data"]["phone"] == patient(2)

    # the console's dashboard shows it, without the number
    with get_database_of(gateway.app).sessions() as session:
        accounts.create(session, "ana@clinic.example", PASSWORD, ("clinic",), ("clinic", "plain"))
    sign_in(gateway.client, "ana@clinic.example")
    response = gateway.client.get("/console/clinic/dashboard")
    assert response.status_code == 200
    page = text_of(response)
    assert "1 failing" in page and failed["id"] in page and "HTTP 500" in page
    assert patient(2)[2:] not in response.get_data(as_text=True)

    path = f"/api/v1/events/{failed['id']}/retry"
    response = gateway.client.post(path, query_string={"practice": "clinic"},
                                   headers=gateway.headers)  # fmt: skip
    assert response.status_code == 200
    assert response.get_json()["status"] == "pending"
    gateway.receiver.status = 200
    assert gateway.deliverer.drain() == {"delivered": 1}
    assert {i for i, _ in gateway.receiver.verified()} == {failed["id"]}
    again = gateway.client.post(path, query_string={"practice": "clinic"}, headers=gateway.headers)
    assert again.status_code == 409
    unknown = gateway.client.post("/api/v1/events/msg_" + "0" * 32 + "/retry",
                                  query_string={"practice": "clinic"}, headers=gateway.headers)
    assert unknown.status_code == 404
    other = gateway.client.post(path, query_string={"practice": "plain"}, headers=gateway.headers)
    assert other.status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [({"status": "lost"}, "status"), ({"limit": "0"}, "limit"), ({"before": "x"}, "before")],
)
def test_bad_event_queries_are_422(gateway, query, field):
    response = gateway.client.get("/api/v1/events", headers=gateway.headers,
                                  query_string={"practice": "clinic", **query})  # fmt: skip
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_events_need_a_token(gateway):
    assert gateway.client.get("/api/v1/events?practice=clinic").status_code == 401


def test_the_scheduler_delivers_events(gateway):
    jobs = {job.id: job for job in scheduler.build(gateway.app).get_jobs()}
    assert jobs["events"].trigger.interval.total_seconds() <= 5


def test_no_event_log_line_names_a_number(gateway, caplog):
    gateway.receiver.status = 500
    gateway.text("STOP", from_=patient(2))
    with caplog.at_level("INFO"):
        gateway.deliverer.drain()
    assert caplog.records
    assert not any(patient(2)[2:] in r.getMessage() for r in caplog.records)


# --- the practices file -------------------------------------------------------------------------


def _practice(**extra: Any) -> dict[str, Any]:
    practice = {"name": "P", "time_zone": "America/New_York", "help_contact": "+1 305-555-0100",
                "senders": {"transactional": "+17865550150"}, **extra}  # fmt: skip
    return {"practices": {"p": practice}}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"confirmations": "yes"}, "practices.p.confirmations"),
        ({"events": {"url": "ftp://x", "secret": SECRET}}, "practices.p.events.url"),
        ({"events": {"url": "https://x.example/hook"}}, "practices.p.events.secret"),
        ({"events": {"url": "https://x.example/hook", "secret": "whsec_c2hvcnQ="}},
         "practices.p.events.secret"),
        ({"events": {"url": "https://x.example/hook", "secret": "nope"}},
         "practices.p.events.secret"),
        ({"events": {"url": "https://x.example/hook", "secret": SECRET, "x": 1}},
         "practices.p.events.x"),
    ],
)
def test_bad_confirmation_or_event_settings_name_the_key(extra, message):
    with pytest.raises(config.ConfigError, match=message.replace(".", r"\.")):
        config.parse_practices(_practice(**extra))


def test_good_event_settings():
    (practice,) = config.parse_practices(
        _practice(confirmations=True, events={"url": "https://x.example/h", "secret": SECRET})
    ).values()
    assert practice.confirmations and practice.events_url == "https://x.example/h"
    assert SECRET not in repr(practice)


# --- pure matching -------------------------------------------------------------------------------


@pytest.mark.parametrize("word", sorted(confirmations.WORDS))
def test_no_answer_word_is_a_consent_or_help_keyword(word):
    assert keywords.classify(word).intent is Intent.NONE
    assert keywords.classify(word.upper() + "!").intent is Intent.NONE


@pytest.mark.parametrize("body", ["STOP", "CANCEL", "YES", "START", "HELP", "cancel my appointment",
                                  "I confirm I will stop by", "CC", "see you", ""])
def test_consent_words_and_sentences_are_no_answers(body):
    assert confirmations.match(body) is None


@given(
    word=st.sampled_from(sorted(confirmations.WORDS)),
    upper=st.booleans(),
    before=st.sampled_from(["", " ", "\u200b", "  "]),
    after=st.sampled_from(["", "!", ".", " 👍", "!!", " ?"]),
)
def test_answers_are_normalised_like_keywords(word, upper, before, after):
    body = before + (word.upper() if upper else word) + after
    answer = confirmations.match(body)
    assert answer is not None
    assert answer.response is confirmations.WORDS[word][0]


_TIMES = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31),
                      timezones=st.just(UTC))  # fmt: skip


@given(st.lists(st.tuples(_TIMES, _TIMES), max_size=8), _TIMES)
def test_the_latest_reminder_still_ahead_answers(rows, now):
    candidates = [Candidate(i, appointment, sent) for i, (appointment, sent) in enumerate(rows)]
    chosen = confirmations.choose(candidates, now)
    ahead = [c for c in candidates if c.appointment_at > now]
    if not ahead:
        assert chosen is None
        return
    assert chosen in ahead
    assert chosen.sent_at == max(c.sent_at for c in ahead)


def test_response_values_are_the_api_contract():
    assert {r.value for r in Response} == {"confirmed", "reschedule_requested"}


def test_example_practices_file_still_loads():
    assert config.load_practices(config.EXAMPLE_PRACTICES_FILE)


def test_erasing_a_number_drops_its_events(gateway):
    gateway.receiver.status = 500
    gateway.text("STOP", from_=patient(2))
    gateway.text("STOP", from_=patient(3))
    response = gateway.client.delete(f"/api/v1/contacts/{patient(2)}", headers=gateway.headers,
                                     query_string={"practice": "clinic"})  # fmt: skip
    assert response.status_code == 200, response.get_json()
    assert [e["data"]["phone"] for e in gateway.events()] == [patient(3)]


def test_the_openapi_document_describes_answers_and_events(gateway):
    document = gateway.client.get("/api/v1/openapi.json").get_json()
    reminder = document["components"]["schemas"]["Reminder"]
    assert {"response", "responded_at"} <= set(reminder["required"])
    assert reminder["properties"]["response"]["enum"] == [
        "confirmed", "reschedule_requested", None
    ]
    assert "get" in document["paths"]["/api/v1/events"]
    assert "post" in document["paths"]["/api/v1/events/{webhook_id}/retry"]


def test_the_export_shows_the_answer(gateway):
    gateway.remind("appt-1")
    gateway.text("R")
    response = gateway.client.get(f"/api/v1/contacts/{patient(1)}/export", headers=gateway.headers,
                                  query_string={"practice": "clinic"})  # fmt: skip
    (message,) = response.get_json()["outbound_messages"]
    assert message["response"] == "reschedule_requested" and message["responded_at"]


def test_settled_events_are_purged_after_a_month(gateway, traveller):
    from gateway.services import retention

    gateway.text("STOP", from_=patient(2))
    assert gateway.deliverer.drain() == {"delivered": 1}
    gateway.receiver.status = 500
    gateway.text("START", from_=patient(2))
    assert gateway.deliverer.drain() == {"retrying": 1}
    traveller.shift(event_outbox.KEEP_SETTLED + timedelta(days=1))
    app = gateway.app
    with get_database_of(app).sessions() as session:
        practice = app.extensions["gateway.settings"].practices["clinic"]
        counts = retention.purge(session, app.extensions["gateway.settings"], practice)
    assert counts["event_deliveries"] == 1
    assert [e["type"] for e in gateway.events()] == ["consent.changed"]  # the pending one stays
    assert gateway.events()[0]["status"] == "pending"


_EXAMPLES = {**config.load_practices(config.EXAMPLE_PRACTICES_FILE),
             **config.load_practices(Path(__file__).parent / "practices.toml")}  # fmt: skip
_INVITATION = {"en": "Reply C to confirm, R to reschedule.",
               "es": "Responda C para confirmar, R para cambiar la cita."}  # fmt: skip
_OPT_OUT = {"en": "Reply STOP to opt out.", "es": "Responda PARAR para cancelar."}


@pytest.mark.parametrize("slug", sorted(_EXAMPLES))
@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize(
    "appointment",
    ["2026-09-30T10:30:00-04:00", "2026-12-23T17:45:00-05:00", "2026-03-01T08:00:00-05:00"],
)
@pytest.mark.parametrize("location", [None, "Suite 200", "Harbor Medical Plaza, 1500 Biscayne"])
def test_every_example_practice_fits_the_invitation_in_160(slug, language, appointment, location):
    practice = replace(_EXAMPLES[slug], confirmations=True)
    params = {"appointment_time": appointment, **({"location": location} if location else {})}
    text = gsm7.to_gsm7(reminders.render("appointment_reminder", params, practice, language,
                                         max_chars=160))  # fmt: skip
    assert len(text) <= 160 and gsm7.segments(text) == 1, text
    assert text.startswith(practice.name + ": ")
    assert text.endswith(_INVITATION[language])
    assert practice.help_contact in text and _OPT_OUT[language] in text
    local = datetime.fromisoformat(appointment).astimezone(ZoneInfo(practice.time_zone))
    assert f"{local:%H:%M}" in text or f"{local.hour % 12 or 12}:{local:%M}" in text
    # with express consent (no limit) the full text goes, location included
    full = reminders.render("appointment_reminder", params, practice, language)
    assert full.endswith(_INVITATION[language]) and (location is None or location in full)


def test_what_reconciliation_learns_is_reported(gateway, traveller):
    """A send whose answer was lost is found at Twilio (reminder.sent), and its lost status
    callback is fetched (reminder.failed): events as if the answers had come."""
    account = "AC" + "1" * 32
    with TwilioServer(account, AUTH_TOKEN) as server:
        transport = TwilioTransport(account, AUTH_TOKEN, api_base_url=server.url, timeout=0.3)
        gateway.app.extensions["gateway.transport"] = transport
        dispatcher = Dispatcher.from_app(gateway.app, owner="test")
        server.script(Delay(1.0))  # Twilio takes it, but answers after the client gave up
        body = {"id": "appt-1", "practice": "clinic", "to": patient(1),
                "send_at": datetime.now(UTC).isoformat(), "template": "appointment_reminder",
                "params": {"appointment_time": APPOINTMENT}}  # fmt: skip
        assert gateway.client.post("/api/v1/reminders", json=body,
                                   headers=gateway.headers).status_code == 201  # fmt: skip
        assert dispatcher.run_pass().uncertain == 1
        for _ in range(100):
            if server.messages:
                break
            threading.Event().wait(0.05)
        database, settings = gateway.app.extensions["gateway.db"], gateway.app.extensions[
            "gateway.settings"]  # fmt: skip
        now = datetime.now(UTC)
        transport.close()
        # the short timeout was for the create alone: looking up must not depend on the speed
        # of a busy machine
        transport = TwilioTransport(account, AUTH_TOKEN, api_base_url=server.url, timeout=60)
        assert reconcile.run(database, settings, transport, now=now + timedelta(minutes=1)) == {
            "found": 1}  # fmt: skip
        (message,) = server.messages
        server.set_status(message["sid"], "undelivered", error_code=30007)
        assert reconcile.run(database, settings, transport,
                             now=now + timedelta(minutes=30)) == {"completed": 1}  # fmt: skip
        transport.close()
    assert gateway.deliverer.drain() == {"delivered": 2}
    received = {payload["type"]: payload["data"] for _, payload in gateway.receiver.verified()}
    assert set(received) == {"reminder.sent", "reminder.failed"}
    assert received["reminder.sent"]["provider_sid"] == message["sid"]
    assert received["reminder.failed"]["error_code"] == 30007
