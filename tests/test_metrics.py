"""``GET /metrics``: what is counted (webhooks, sends by outcome, consent changes, delivery
statuses), the queue figures read at scrape time, who may read it, and no number in any label.

The sends go through the real twilio SDK to the local Twilio-compatible server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from conftest import (
    API_TOKEN,
    AUTH_TOKEN,
    PATIENT,
    SHARED,
    inbound_params,
    patient,
    reminder_body,
)
from gateway.core.domain import Action, Category, Source
from gateway.services import consent, metrics
from gateway.services.dispatch import Dispatcher
from gateway.store.models import Base, utcnow
from twilio_server import Delay, Reply, TwilioServer

ACCOUNT_SID = "AC" + "1" * 32
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
METRICS_TOKEN = "metrics-token-0123456789"


def scrape(client, headers=AUTH) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before, after, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture(autouse=True)
def daytime_in_miami():
    with time_machine.travel(datetime(2026, 3, 2, 15, 0, tzinfo=UTC), tick=True):
        yield


@pytest.fixture
def live(database_url, make_app):
    """The app on loopback, sending through the local Twilio-compatible server."""
    with TwilioServer(ACCOUNT_SID, AUTH_TOKEN) as twilio_server:
        server = make_server("127.0.0.1", 0, None, threaded=True)
        url = f"http://127.0.0.1:{server.server_port}"
        app = make_app(
            database_url, PUBLIC_BASE_URL=url, TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_API_BASE_URL=twilio_server.url,
        )  # fmt: skip
        server.app = app
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        app.twilio_server = twilio_server
        yield app
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.extensions["gateway.transport"].close()
        with app.extensions["gateway.db"].engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


def test_a_stop_a_sent_reminder_and_a_failed_one_are_counted(live):
    client = live.test_client()
    before = scrape(client)

    # a STOP, signed as Twilio signs it (against this app's PUBLIC_BASE_URL)
    params = inbound_params("STOP", from_=PATIENT, to=SHARED)
    url = live.extensions["gateway.settings"].public_base_url + "/webhooks/twilio/inbound"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    answer = client.post("/webhooks/twilio/inbound", data=params,
                         headers={"X-Twilio-Signature": signature})  # fmt: skip
    assert answer.status_code == 200 and b"unsubscribed" in answer.data
    bad = client.post("/webhooks/twilio/inbound", data=params,
                      headers={"X-Twilio-Signature": "forged"})  # fmt: skip
    assert bad.status_code == 403

    # a reminder sent, and one that Twilio refuses (21610: the carrier holds an opt-out)
    for n, reminder_id in ((1, "appt-sent"), (2, "appt-failed")):
        body = reminder_body(id=reminder_id, to=patient(n), send_at=utcnow().isoformat(),
                             expires_at=None)  # fmt: skip
        assert client.post("/api/v1/reminders", json=body, headers=AUTH).status_code == 201
    live.twilio_server.script(Delay(0), Reply(400, code=21610))  # accept, then refuse
    summary = Dispatcher.from_app(live, concurrency=1).run_pass()
    assert (summary.sent, summary.failed) == (1, 1), summary
    # the sent one is delivered (a signed status callback from the Twilio-compatible server)
    (sent,) = [m for m in live.twilio_server.messages if m["to"] == patient(1)]
    assert live.twilio_server.send_status(sent["sid"], "delivered") == 204

    after = scrape(client)
    shared = {"practice": "shared"}
    assert delta(before, after, "gateway_inbound_messages_total", **shared, intent="opt_out",
                 duplicate="false") == 1  # fmt: skip
    for category in ("transactional", "marketing"):  # the shared number carries both
        assert delta(before, after, "gateway_consent_changes_total", **shared, category=category,
                     action="opt_out", source="keyword") == 1  # fmt: skip
    assert delta(before, after, "gateway_consent_changes_total", **shared, action="opt_out",
                 category="transactional", source="carrier_error") == 1  # fmt: skip
    assert delta(before, after, "gateway_sends_total", **shared, category="transactional",
                 outcome="sent", reason="") == 1  # fmt: skip
    assert delta(before, after, "gateway_sends_total", **shared, category="transactional",
                 outcome="failed", reason="21610") == 1  # fmt: skip
    assert delta(before, after, "gateway_delivery_statuses_total", **shared,
                 status="delivered", error_code="") == 1  # fmt: skip
    assert delta(before, after, "gateway_webhook_requests_total", kind="inbound",
                 status="200") == 1  # fmt: skip
    assert delta(before, after, "gateway_webhook_requests_total", kind="inbound",
                 status="403") == 1  # fmt: skip
    assert delta(before, after, "gateway_webhook_requests_total", kind="status",
                 status="204") == 1  # fmt: skip
    assert delta(before, after, "gateway_webhook_duration_seconds_count", kind="inbound") == 2
    assert value(after, "gateway_database_up") == 1


def test_skipped_and_deferred_sends_are_counted_with_their_reason(app, client, api, twilio,
                                                                  dispatcher, clock):  # fmt: skip
    before = scrape(client)
    twilio.inbound("STOP")
    api.enqueue(id="to-opted-out", send_at="2026-03-02T14:00:00Z")
    api.enqueue(id="at-night", to=patient(7), send_at="2026-03-02T14:00:00Z")
    clock.now = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 22:00 in Miami: deferred
    summary = dispatcher.run_pass()
    assert summary.skipped == {"opted_out": 1} and summary.deferred == 1
    after = scrape(client)
    labels = {"practice": "shared", "category": "transactional"}
    assert delta(before, after, "gateway_sends_total", **labels, outcome="skipped",
                 reason="opted_out") == 1  # fmt: skip
    assert delta(before, after, "gateway_sends_total", **labels, outcome="deferred",
                 reason="") == 1  # fmt: skip


def test_queue_figures_are_read_at_scrape_time(app, client, api, twilio):
    now = utcnow()
    with time_machine.travel(now, tick=False):
        api.enqueue(id="due", send_at=(now - timedelta(seconds=90)).isoformat(), expires_at=None)
        api.enqueue(id="later", to=patient(3), send_at=(now + timedelta(hours=2)).isoformat(),
                    expires_at=None)  # fmt: skip
        twilio.inbound("I'll stop by at 3")  # kept for staff review
    with time_machine.travel(now + timedelta(seconds=120), tick=False):
        samples = scrape(client)
    shared = {"practice": "shared"}
    assert value(samples, "gateway_outbox_messages", **shared, state="due") == 1
    assert value(samples, "gateway_outbox_messages", **shared, state="scheduled") == 1
    assert value(samples, "gateway_outbox_messages", **shared, state="sending") == 0
    assert value(samples, "gateway_outbox_oldest_due_seconds", **shared) == pytest.approx(210)
    assert value(samples, "gateway_review_queue_messages", **shared) == 1
    assert value(samples, "gateway_review_queue_oldest_seconds", **shared) == pytest.approx(120)
    # a practice with nothing queued still has its figures, at zero
    assert ("gateway_review_queue_messages", (("practice", "split"),)) in samples
    assert value(samples, "gateway_outbox_oldest_due_seconds", practice="split") == 0


@pytest.mark.parametrize(
    ("settings", "headers", "status"),
    [
        ({}, {}, 401),
        ({}, {"Authorization": "Bearer wrong-token-0123456789"}, 401),
        ({}, {"Authorization": f"Basic {API_TOKEN}"}, 401),
        ({}, AUTH, 200),
        # a token scoped to one practice does not read every practice's figures
        ({"GATEWAY_API_TOKEN": f"shared:{API_TOKEN}"}, AUTH, 401),
        ({"GATEWAY_METRICS_TOKEN": METRICS_TOKEN}, {"Authorization": f"Bearer {METRICS_TOKEN}"},
         200),
        ({}, {"Authorization": f"Bearer {METRICS_TOKEN}"}, 401),
        # the test client's requests come from 127.0.0.1
        ({"GATEWAY_METRICS_ALLOW": "127.0.0.0/8"}, {}, 200),
        ({"GATEWAY_METRICS_ALLOW": "10.0.0.0/8, ::1"}, {}, 401),
    ],
)
def test_who_may_read_metrics(database_url, make_app, settings, headers, status):
    response = make_app(database_url, **settings).test_client().get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.get_json() == {"error": "missing or invalid bearer token"}
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"gateway_" not in response.data


@pytest.mark.parametrize(
    ("name", "raw"),
    [("GATEWAY_METRICS_TOKEN", "short"), ("GATEWAY_METRICS_ALLOW", "not-a-network"),
     ("GATEWAY_SCHEDULER_METRICS_PORT", "70000"), ("GATEWAY_LOG_FORMAT", "xml")],
)  # fmt: skip
def test_bad_metrics_settings_stop_the_gateway(database_url, make_app, name, raw):
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match=name):
        make_app(database_url, **{name: raw})


def test_no_phone_number_in_any_label(app, client, api, twilio):
    twilio.inbound("STOP", from_="+13055550199")
    twilio.inbound("I'll stop by at 3", from_="+13055550198")
    api.enqueue(id="x", to="+1 305 555 0197")
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label in sample.labels.values():
                assert not re.search(r"\d{6,}|555", label), sample  # error codes: 5 digits
    assert "stop by" not in text.lower()


@pytest.mark.parametrize(
    ("code", "label"),
    [(21610, "21610"), ("30003", "30003"), (503, "503"), (None, ""), (2147483647, "other"),
     (7, "other"), ("x", "other")],
)  # fmt: skip
def test_error_codes_as_labels_stay_few(code, label):
    assert metrics.code_label(code) == label


def test_a_consent_event_counts_only_once_committed(app, session):
    before = metrics.CONSENT_CHANGES.labels("shared", "marketing", "opt_in", "staff")._value.get()
    consent.record(session, practice="shared", phone=PATIENT, category=Category.MARKETING,
                   action=Action.OPT_IN, source=Source.STAFF)  # fmt: skip
    session.rollback()
    consent.record(session, practice="shared", phone=PATIENT, category=Category.MARKETING,
                   action=Action.OPT_IN, source=Source.STAFF)  # fmt: skip
    session.commit()
    after = metrics.CONSENT_CHANGES.labels("shared", "marketing", "opt_in", "staff")._value.get()
    assert after - before == 1


def test_stale_metric_files_go_and_live_ones_stay(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    for name in (f"counter_{dead}.db", f"histogram_{dead}.db", f"counter_{os.getpid()}.db",
                 "notes.txt"):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    assert metrics.remove_stale_files(str(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{os.getpid()}.db", "notes.txt"]


MULTIPROCESS_SCRIPT = """
import sys
from gateway.services import metrics
for _ in range(int(sys.argv[1])):
    metrics.count_send("shared", "transactional", "sent")
"""


def test_counts_of_every_process_add_up_in_multiprocess_mode(tmp_path, database_url, make_app):
    """What gunicorn's workers and the scheduler do: each process writes its own files to
    PROMETHEUS_MULTIPROC_DIR; a scrape adds them up."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    for count in (2, 3):
        subprocess.run([sys.executable, "-c", MULTIPROCESS_SCRIPT, str(count)], env=env,
                       check=True)  # fmt: skip
    app = make_app(database_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
        samples = scrape(app.test_client())
    assert value(samples, "gateway_sends_total", practice="shared", category="transactional",
                 outcome="sent", reason="") == 5  # fmt: skip
