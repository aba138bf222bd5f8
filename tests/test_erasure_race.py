"""Erasure and STOP against sends under way: ``DELETE /api/v1/contacts/<phone>`` takes the same
per-number send lock as a STOP, cancels what is not yet in Twilio's hands (claimed or not), and
nothing writes the number or a body back into an erased row. On SQLite the lock spans
processes (file locks): a web process and a ``flask dispatch`` process cannot interleave."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, or_, select
from test_faults import ACCOUNT_SID, daytime_zone, statuses, use_twilio

from conftest import API_TOKEN, PATIENT, TwilioActions, app_config, reminder_body
from gateway.services.dispatch import Dispatcher
from gateway.store import contacts
from gateway.store.models import OutboundMessage, utcnow
from twilio_server import TwilioServer

ROOT = Path(__file__).parent.parent
COUNT = 60
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def enqueue(client, count: int = COUNT, **overrides) -> None:
    for n in range(count):
        body = reminder_body(id=f"appt-{n}", expires_at=None, **overrides)
        response = client.post("/api/v1/reminders", json=body, headers=AUTH)
        assert response.status_code == 201, response.get_json()


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert predicate(), "timed out"


def erase(client) -> float:
    """DELETE the patient; returns time.monotonic() once the 200 is in."""
    response = client.delete(f"/api/v1/contacts/{PATIENT}", query_string={"practice": "shared"},
                             headers=AUTH)  # fmt: skip
    assert response.status_code == 200, response.get_json()
    return time.monotonic()


def assert_nothing_personal_left(app) -> None:
    with app.extensions["gateway.db"].sessions() as session:
        left = session.scalar(
            select(func.count()).select_from(OutboundMessage).where(
                or_(OutboundMessage.phone == PATIENT, OutboundMessage.sent_to == PATIENT,
                    OutboundMessage.body.is_not(None))
            )
        )  # fmt: skip
    assert left == 0


def test_no_text_reaches_twilio_after_an_erasure_answered(app, clock):
    """Explicit consent, 60 reminders due to one number, two dispatchers, Twilio latency 100 ms;
    the DELETE comes while they send."""
    client = app.test_client()
    assert TwilioActions(client).inbound("START").status_code == 200  # no frequency caps
    enqueue(client)
    with TwilioServer(ACCOUNT_SID, "0123456789abcdef0123456789abcdef", latency=0.1) as server:
        transport = use_twilio(app, server)
        dispatchers = [
            Dispatcher.from_app(app, clock=clock, owner=f"d{n}", batch=10, concurrency=4)
            for n in range(2)
        ]
        threads = [threading.Thread(target=d.drain) for d in dispatchers]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(server.messages) >= 5)
        answered = erase(client)
        for thread in threads:
            thread.join(timeout=120)
        transport.close()
        creates = [r for r in server.requests if r.method == "POST"]

    late = [r for r in creates if r.received > answered]
    assert late == []
    counts = statuses(app)
    assert counts["sent"] == len(creates) < COUNT
    assert counts["sent"] + counts["cancelled"] == COUNT
    assert_nothing_personal_left(app)
    export = client.get(f"/api/v1/contacts/{PATIENT}/export", query_string={"practice": "shared"},
                        headers=AUTH).get_json()  # fmt: skip
    assert export["outbound_messages"] == []


def _dispatch_process(app, database_url: str, tmp_path: Path, server: TwilioServer):
    env = {
        **os.environ,
        **app_config(database_url, tmp_path / "instance", TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                     TWILIO_API_BASE_URL=server.url, GATEWAY_DISPATCH_BATCH=str(COUNT),
                     GATEWAY_DISPATCH_CONCURRENCY="4"),
        "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "dispatch"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _daytime_patient(app) -> None:
    with app.extensions["gateway.db"].sessions() as session:  # daytime now, on the real clock
        contacts.upsert(session, "shared", PATIENT, time_zone=daytime_zone())
        session.commit()


@pytest.mark.parametrize("change", ["erase", "stop"])
def test_a_web_process_and_a_dispatch_process_do_not_interleave(
    app, database_url, tmp_path, change
):
    """One ``flask dispatch`` pass in its own process sends a number's reminders; an erasure or
    a STOP arrives in this (the web) process meanwhile: no request reaches Twilio after its
    answer. On SQLite this needs a lock across processes."""
    client = app.test_client()
    twilio = TwilioActions(client)
    assert twilio.inbound("START").status_code == 200
    _daytime_patient(app)
    enqueue(client, send_at=utcnow().isoformat())
    with TwilioServer(ACCOUNT_SID, "0123456789abcdef0123456789abcdef", latency=0.1) as server:
        process = _dispatch_process(app, database_url, tmp_path, server)
        try:
            wait_for(lambda: len(server.messages) >= 3 or process.poll() is not None)
            assert process.poll() is None, process.communicate()
            if change == "erase":
                answered = erase(client)
            else:
                assert twilio.inbound("STOP").status_code == 200
                answered = time.monotonic()
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err
        creates = [r for r in server.requests if r.method == "POST"]

    late = [r for r in creates if r.received > answered]
    assert late == []
    assert 0 < len(creates) < COUNT
    if change == "erase":
        assert_nothing_personal_left(app)


_HOLDER = """
import sys, time
from sqlalchemy import create_engine
from gateway.store import send_lock
locks = send_lock.file_locks(create_engine(sys.argv[1]))
with locks.hold([sys.argv[2]]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
    print(time.monotonic(), flush=True)
"""


def _hold_in_another_process(database_url: str, seconds: float):
    """Another process holding the number's send lock (as a dispatcher mid-send does);
    returns (the process, a function giving the monotonic time it let go)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, database_url, PATIENT, str(seconds)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process, lambda: float(process.stdout.readline())  # type: ignore[union-attr]


@pytest.mark.parametrize("change", ["stop", "erase"])
def test_on_sqlite_a_consent_change_waits_for_another_process_holding_the_number(
    app, database_url, change
):
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's advisory locks are covered by the tests above")
    client = app.test_client()
    process, released = _hold_in_another_process(database_url, 0.5)
    try:
        if change == "stop":
            assert TwilioActions(client).inbound("STOP").status_code == 200
        else:
            erase(client)
        answered = time.monotonic()
        assert answered >= released()  # it waited for the other process
    finally:
        process.communicate(timeout=10)


def test_on_sqlite_a_dispatcher_waits_for_another_process_holding_the_number(
    app, database_url, clock
):
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's advisory locks are covered by the tests above")
    client = app.test_client()
    enqueue(client, count=1)
    with TwilioServer(ACCOUNT_SID, "0123456789abcdef0123456789abcdef") as server:
        transport = use_twilio(app, server)
        process, released = _hold_in_another_process(database_url, 0.5)
        try:
            assert Dispatcher.from_app(app, clock=clock).run_pass().sent == 1
            assert server.requests[0].received >= released()
        finally:
            process.communicate(timeout=10)
            transport.close()
