"""Erasure and STOP against sends under way: ``DELETE /api/v1/contacts/<phone>`` takes the same
per-number send lock as a STOP, cancels what is not yet in Twilio's hands (claimed or not), and
nothing writes the number or a body back into an erased row. On SQLite the lock spans
processes (file locks): a web process and a ``flask dispatch`` process cannot interleave."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, or_, select, text
from test_faults import ACCOUNT_SID, daytime_zone, received_per_number, statuses, use_twilio

from conftest import API_TOKEN, PATIENT, TwilioActions, app_config, patient, reminder_body
from gateway.services.dispatch import Dispatcher
from gateway.store import contacts, send_lock
from gateway.store.models import OutboundMessage, utcnow
from twilio_server import Hold, TwilioServer

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


def _waiting_for_their_lock(app, numbers: set[str]) -> set[str]:
    """Those of ``numbers`` whose send lock someone is waiting for right now: PostgreSQL's
    ungranted advisory locks, or the kernel's blocked ``flock`` calls on their stripe files."""
    engine = app.extensions["gateway.db"].engine
    if engine.dialect.name == "postgresql":
        by_key = {send_lock.key(n): n for n in numbers}
        with engine.connect() as connection:
            keys = connection.execute(text(
                "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks"
                " WHERE locktype = 'advisory' AND objsubid = 1 AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )).scalars()  # fmt: skip
            return {by_key[k] for k in keys if k in by_key}
    locks = send_lock.file_locks(engine)
    assert locks is not None
    by_file = {}
    for number in numbers:
        stat = os.stat(locks.directory / f"{locks.stripe(number)}.lock")
        device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
        by_file[device] = number
    with open("/proc/locks") as listing:  # a waiter's line: "1: -> FLOCK ADVISORY WRITE ..."
        waiting = [line.split() for line in listing if " -> FLOCK " in line]
    return {by_file[f] for fields in waiting for f in fields if f in by_file}


def test_stops_and_erasures_racing_a_batch_in_flight(app, make_app, database_url, clock):
    """48 patients, a dispatcher whose first batch (16) is locked, decided and handed to the
    pool: the first 6 requests held at Twilio, the other 10 queued behind them. Meanwhile, from
    threads of their own: STOPs and erasures for numbers whose request Twilio holds, for numbers
    queued in the batch (each waits for its send; the test releases Twilio once every one is
    answered or waiting for its number's lock), for numbers no batch has claimed yet (answered
    while the batch is in flight), and, once Twilio is released, for numbers the next batches
    claim at the same moment. For each number changed: no request reaches Twilio after the
    change was answered; every reminder ends final, none lost, none sent twice; an erased number
    leaves nothing personal."""
    if database_url.startswith("sqlite") and not os.path.exists("/proc/locks"):
        pytest.skip("on SQLite a waiter for a number's lock is seen in Linux's /proc/locks")
    count, batch, concurrency = 48, 16, 6
    # the changes wait for sends under way: the request deadline (3 s) is for production
    # (``app`` is the same database, emptied after the test)
    web = make_app(database_url, GATEWAY_DATABASE_TIMEOUT="60")
    client = web.test_client()
    for n in range(count):
        body = reminder_body(id=f"appt-{n}", to=patient(n), expires_at=None)
        response = client.post("/api/v1/reminders", json=body, headers=AUTH)
        assert response.status_code == 201, response.get_json()
    with TwilioServer(ACCOUNT_SID, "0123456789abcdef0123456789abcdef", latency=0.005) as server:
        server.script(*[Hold()] * concurrency)
        transport = use_twilio(web, server)
        dispatcher = Dispatcher.from_app(web, clock=clock, owner="racing", batch=batch,
                                         concurrency=concurrency)  # fmt: skip
        drain = threading.Thread(target=dispatcher.drain)
        drain.start()
        wait_for(lambda: server.held == concurrency or not drain.is_alive(), timeout=120)
        assert server.held == concurrency, "the first batch is in flight"

        with web.extensions["gateway.db"].sessions() as session:
            in_batch = set(session.scalars(select(OutboundMessage.phone).where(
                OutboundMessage.status == "sending")))  # fmt: skip
        at_twilio = {r.form["To"] for r in server.requests if r.method == "POST"}
        queued = in_batch - at_twilio
        unclaimed = {patient(n) for n in range(count)} - in_batch
        assert len(in_batch) == batch and len(at_twilio) == concurrency
        rng = random.Random(5)
        held_, queued_, unclaimed_ = (rng.sample(sorted(s), len(s))
                                      for s in (at_twilio, queued, unclaimed))  # fmt: skip
        stop = held_[:2] + queued_[:3]
        erase_ = held_[2:4] + queued_[3:6]
        early_stop, early_erase = unclaimed_[:4], unclaimed_[4:8]
        late_stop, late_erase = unclaimed_[8:11], unclaimed_[11:14]
        erased = set(erase_ + early_erase + late_erase)

        answered: dict[str, float] = {}
        failed: dict[str, str] = {}
        guard = threading.Lock()

        def finished() -> set[str]:
            with guard:
                return answered.keys() | failed.keys()

        def change(number: str) -> None:
            client = web.test_client()
            try:
                if number in erased:
                    response = client.delete(f"/api/v1/contacts/{number}",
                                             query_string={"practice": "shared"},
                                             headers=AUTH)  # fmt: skip
                else:
                    response = TwilioActions(client).inbound("STOP", from_=number)
                at = time.monotonic()  # committed before the answer
                trouble = None if response.status_code == 200 else response.get_data(as_text=True)
            except Exception as exc:
                at, trouble = 0.0, repr(exc)
            with guard:
                if trouble is None:
                    answered[number] = at
                else:
                    failed[number] = trouble

        def start(numbers: list[str]) -> list[threading.Thread]:
            threads = [threading.Thread(target=change, args=(n,)) for n in numbers]
            for thread in threads:
                thread.start()
            return threads

        early = start(early_stop + early_erase)
        in_flight = start(stop + erase_)
        for thread in early:
            thread.join(timeout=120)
        # these struck while the batch was in flight: Twilio has held every request so far
        assert set(early_stop + early_erase) <= answered.keys(), failed
        assert server.held == concurrency and server.messages == []
        racing = set(stop + erase_)

        def answered_or_waiting() -> bool:
            done = finished()
            return racing <= done | _waiting_for_their_lock(web, racing - done)

        wait_for(answered_or_waiting, timeout=120)
        server.release()
        late = start(late_stop + late_erase)
        for thread in in_flight + late:
            thread.join(timeout=120)
        drain.join(timeout=120)
        assert not drain.is_alive()
        dispatcher.drain()  # whatever a change sent back for the next pass
        transport.close()
        creates = [r for r in server.requests if r.method == "POST"]

    changed = set(stop + erase_ + early_stop + early_erase + late_stop + late_erase)
    assert failed == {}
    assert answered.keys() == changed
    after_change = [(r.form["To"], r.received - answered[r.form["To"]]) for r in creates
                    if r.received > answered.get(r.form["To"], float("inf"))]  # fmt: skip
    assert after_change == []
    received = received_per_number(server)
    assert set(received.values()) == {1}, "nothing sent twice"
    with web.extensions["gateway.db"].sessions() as session:
        rows = session.execute(select(OutboundMessage.external_id, OutboundMessage.status,
                                      OutboundMessage.reason)).all()  # fmt: skip
    final = {int(i.removeprefix("appt-")): (s, r) for i, s, r in rows}
    assert sorted(final) == list(range(count)), "none lost"
    for n, (status, reason) in final.items():
        number = patient(n)
        if number not in changed or number in at_twilio:  # at_twilio: it had it before
            expected = {("sent", None)}
        elif number in set(early_stop):
            expected = {("skipped", "opted_out")}
        elif number in set(early_erase):
            expected = {("cancelled", "erased")}
        elif number in erased:  # sent before the erasure, or cancelled by it
            expected = {("sent", None), ("cancelled", "erased")}
        else:
            expected = {("sent", None), ("skipped", "opted_out")}
        assert (str(status), reason) in expected, (n, status, reason)
        assert (number in received) == (status == "sent"), n
    assert statuses(web)["sent"] == len(creates)
    _assert_nothing_personal_left_of(web, {n: f"appt-{k}" for k in range(count)
                                           if (n := patient(k)) in erased})  # fmt: skip


def _assert_nothing_personal_left_of(app, reminders: dict[str, str]) -> None:
    """``reminders``: each erased number's reminder (its id)."""
    numbers, ids = set(reminders), list(reminders.values())
    with app.extensions["gateway.db"].sessions() as session:
        left = session.scalar(
            select(func.count()).select_from(OutboundMessage).where(
                or_(OutboundMessage.phone.in_(numbers), OutboundMessage.sent_to.in_(numbers),
                    OutboundMessage.external_id.in_(ids) & OutboundMessage.body.is_not(None))
            )
        )  # fmt: skip
    assert left == 0
    client = app.test_client()
    for number in numbers:  # the API finds nothing either
        export = client.get(f"/api/v1/contacts/{number}/export",
                            query_string={"practice": "shared"}, headers=AUTH)  # fmt: skip
        export = export.get_json()
        assert export["outbound_messages"] == [] and export["contact"] is None
