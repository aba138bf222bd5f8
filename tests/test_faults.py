"""Faults at scale, bounded for CI (bench/ runs the full counts): a 429 storm, a scheduler killed
with SIGKILL mid-pass, STOPs racing a dispatch, the database going away during a pass.

Each checks the two things that matter: nothing lost (every reminder ends sent), nothing
duplicated (Twilio received each one once), and no text after a committed STOP. None depends on
the machine's speed: where a fault must strike while sends are in flight, the Twilio-compatible
server holds them (``Hold``) until it has; waits and timeouts are only guards against a hang.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from conftest import (
    AUTH_TOKEN,
    Clock,
    TwilioActions,
    app_config,
    patient,
    reminder_body,
)
from gateway.services import reconcile, scheduler
from gateway.services.dispatch import Dispatcher
from gateway.services.transport import TwilioTransport
from gateway.store import contacts, outbox
from gateway.store.models import OutboundMessage, utcnow
from tcp_proxy import TcpProxy
from twilio_server import Delay, Hold, TwilioServer

ACCOUNT_SID = "AC" + "2" * 32
ROOT = Path(__file__).parent.parent


#: how long a test waits for something that must happen, before calling it hung
HANG_GUARD = 600.0


def use_twilio(app, server: TwilioServer, timeout: float = 60.0) -> TwilioTransport:
    transport = TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url=server.url, timeout=timeout)
    app.extensions["gateway.transport"] = transport
    return transport


def enqueue_many(api, count: int, **overrides) -> None:
    for n in range(count):
        response = api.post(
            "/api/v1/reminders",
            json=reminder_body(id=f"appt-{n}", to=patient(n), expires_at=None, **overrides),
        )
        assert response.status_code == 201, response.get_json()


def statuses(app) -> Counter[str]:
    with app.extensions["gateway.db"].sessions() as session:
        rows = session.execute(
            select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)
        )
        return Counter(dict(rows.all()))


def received_per_number(server: TwilioServer) -> Counter[str]:
    return Counter(m["to"] for m in server.messages)


@pytest.fixture
def twilio_server():
    with TwilioServer(ACCOUNT_SID, AUTH_TOKEN, throttle=0.3, seed=11) as server:
        yield server


def test_a_429_storm_loses_nothing_and_sends_nothing_twice(app, api, twilio_server, clock):
    """30% of creates answered 429 / 20429; three dispatchers share the outbox."""
    count = 150
    transport = use_twilio(app, twilio_server)
    enqueue_many(api, count)
    lock = threading.Lock()
    dispatchers = [
        Dispatcher.from_app(app, clock=clock, owner=f"d{n}", batch=20, concurrency=4,
                            rng=random.Random(n))  # fmt: skip
        for n in range(3)
    ]

    def work(dispatcher: Dispatcher) -> None:
        for _ in range(200):
            if statuses(app)["sent"] == count:
                return
            dispatcher.drain()
            with lock:  # each retry waits at most an hour of the test's clock
                clock.advance(hours=1)

    threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HANG_GUARD)
    transport.close()

    assert statuses(app) == {"sent": count}
    received = received_per_number(twilio_server)
    assert len(received) == count and set(received.values()) == {1}
    throttled = sum(1 for r in twilio_server.requests if r.method == "POST") - count
    assert throttled > count * 0.2  # the storm happened


def test_a_scheduler_killed_mid_pass_loses_and_duplicates_nothing(
    app, api, database_url, tmp_path
):
    """SIGKILL while sends are in flight; its leases expire, reconciliation asks Twilio about
    the sends it had started, and a second dispatcher finishes the rest."""
    count, concurrency = 120, 8
    with TwilioServer(ACCOUNT_SID, AUTH_TOKEN, latency=0.05) as server:
        # a third goes through; then every sending thread of the scheduler waits in a request
        # that Twilio never answers (nor takes), however fast or slow the machine is
        server.script(*[Delay(0)] * (count // 3), *[Hold()] * concurrency)
        # the subprocess runs on the real clock: a zone where it is daytime now, for everyone
        zone = daytime_zone()
        with app.extensions["gateway.db"].sessions() as session:
            for n in range(count):
                contacts.upsert(session, "shared", patient(n), time_zone=zone)
            session.commit()
        enqueue_many(api, count, send_at=utcnow().isoformat())
        env = {
            **os.environ,
            **app_config(
                database_url, tmp_path / "instance", GATEWAY_DISPATCH_INTERVAL="0.2",
                GATEWAY_DISPATCH_LEASE="5", GATEWAY_DISPATCH_CONCURRENCY=str(concurrency),
                GATEWAY_DISPATCH_BATCH="20", TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                TWILIO_API_BASE_URL=server.url,
            ),
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "scheduler"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            hang_guard = time.monotonic() + HANG_GUARD
            while (len(server.messages) < count // 3 or server.held < concurrency) and (
                time.monotonic() < hang_guard
            ):
                time.sleep(0.01)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=HANG_GUARD)
        assert len(server.messages) == count // 3, "the kill comes mid-way"
        in_flight = statuses(app)["sending"]
        assert in_flight >= concurrency, "sends were under way"

        # what housekeeping and reconciliation do on the next scheduler, on its own clock
        use_twilio(app, server)
        clock = Clock(utcnow() + timedelta(seconds=6))  # past the 5 s lease
        with app.extensions["gateway.db"].sessions() as session:
            released = outbox.release_expired_leases(session, clock())
        assert released["requeued"] + released["uncertain"] == in_flight
        settings, database = app.extensions["gateway.settings"], app.extensions["gateway.db"]
        transport = app.extensions["gateway.transport"]
        reconcile.run(database, settings, transport, now=clock.advance(minutes=3))
        assert statuses(app)["uncertain"] == 0
        dispatcher = Dispatcher.from_app(app, clock=clock, owner="survivor")
        dispatcher.drain()
        transport.close()

        assert statuses(app) == {"sent": count}
        received = received_per_number(server)
        assert len(received) == count and set(received.values()) == {1}


def test_no_text_starts_after_a_committed_stop(app, api, database_url, twilio_server, clock):
    """STOPs arrive through the signed webhook while dispatchers send to the same numbers."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the cross-process guarantee is PostgreSQL's (advisory locks)")
    count = 160
    twilio_server.throttle = 0.0
    twilio_server.latency = 0.01
    transport = use_twilio(app, twilio_server)
    enqueue_many(api, count)
    stopped_at: dict[str, float] = {}
    order = list(range(count))
    random.Random(3).shuffle(order)
    early, racing = order[:8], order[8:]

    def stop_texts(numbers: list[int]) -> None:
        actions = TwilioActions(app.test_client())
        for n in numbers:
            response = actions.inbound("STOP", from_=patient(n))
            assert response.status_code == 200
            stopped_at[patient(n)] = time.monotonic()  # committed before the answer

    senders = [
        threading.Thread(
            target=Dispatcher.from_app(app, clock=clock, owner=f"d{n}", batch=10,
                                       concurrency=4).drain,
        )  # fmt: skip
        for n in range(2)
    ]
    stoppers = [threading.Thread(target=stop_texts, args=(racing[k::2],)) for k in range(2)]
    stop_texts(early)  # before any dispatcher: skipped, whatever the machine's speed
    for thread in senders + stoppers:
        thread.start()
    for thread in senders + stoppers:
        thread.join(timeout=HANG_GUARD)
    transport.close()

    creates = [r for r in twilio_server.requests if r.method == "POST"]
    late = [r for r in creates if r.received > stopped_at.get(r.form["To"], float("inf"))]
    assert late == []
    counts = statuses(app)
    assert counts["sent"] + counts["skipped"] == count
    assert counts["sent"] == len(creates)
    assert counts["skipped"] >= len(early)
    assert {patient(n) for n in early}.isdisjoint(r.form["To"] for r in creates)


ZONES = ["America/New_York", "Europe/London", "Asia/Dubai", "Asia/Kolkata", "Asia/Tokyo",
         "Pacific/Auckland", "Pacific/Honolulu", "America/Los_Angeles"]  # fmt: skip


def daytime_zone() -> str:
    from zoneinfo import ZoneInfo

    now = utcnow()
    return next(z for z in ZONES if 9 <= now.astimezone(ZoneInfo(z)).hour < 18)


def noticed(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether the dispatcher has logged that its database connection failed."""
    return any(
        r.name == "gateway.dispatch" and "database connection failed" in r.getMessage()
        for r in list(caplog.records)
    )


def test_the_database_going_away_mid_pass_loses_and_duplicates_nothing(
    app, api, database_url, make_app, clock, caplog
):
    """The dispatcher's database connections are reset while its sends are in flight, and new
    ones refused: the sends it could not record are left leased, become uncertain, are found at
    Twilio, and nothing is sent twice; the requests of the batch not yet made when the failure
    was noticed are not made (their numbers' locks went with the connection), are not found at
    Twilio, and are sent once on the next pass.

    The held requests are let go only once the dispatcher has noticed the failure (with nothing
    answered, it checks its connection): how many requests free threads would make between the
    failure and its noticing depends on the machine's speed, which a test must not."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite is a file: it does not go away")
    count, concurrency = 12, 4
    url = make_url(database_url)
    enqueue_many(api, count)
    with (
        TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy,
        TwilioServer(ACCOUNT_SID, AUTH_TOKEN) as server,
    ):
        server.script(*[Hold()] * concurrency)  # Twilio answers these once the database is gone
        cut_off = make_app(url.set(port=proxy.port).render_as_string(hide_password=False),
                           GATEWAY_DISPATCH_LEASE="5")  # fmt: skip
        use_twilio(cut_off, server)
        dispatcher = Dispatcher.from_app(
            cut_off, clock=clock, owner="cut-off", concurrency=concurrency
        )
        thread = threading.Thread(
            target=scheduler._survive_database_outage, args=("dispatch", dispatcher.drain)
        )
        thread.start()
        hang_guard = time.monotonic() + HANG_GUARD
        while server.held < concurrency and time.monotonic() < hang_guard:
            time.sleep(0.005)
        proxy.cut()  # sends are in flight; their results cannot be written
        while not noticed(caplog) and time.monotonic() < hang_guard:
            time.sleep(0.005)
        assert noticed(caplog)
        server.release()  # the pool's threads are free for the rest of the batch
        thread.join(timeout=HANG_GUARD)
        assert not thread.is_alive()
        in_flight = len(server.messages)
        # the held requests only: those of the batch not yet made when the failure was
        # noticed are not made
        assert in_flight == concurrency < count
        assert statuses(app)["sending"] == count

        proxy.restore()  # the database is back: housekeeping, reconciliation, the next pass
        later = Clock(clock.advance(seconds=10))
        with cut_off.extensions["gateway.db"].sessions() as session:
            outbox.release_expired_leases(session, later())
        settings = cut_off.extensions["gateway.settings"]
        transport = cut_off.extensions["gateway.transport"]
        database = cut_off.extensions["gateway.db"]
        assert reconcile.run(database, settings, transport, now=later.advance(minutes=3))[
            "found"
        ] == in_flight
        Dispatcher.from_app(cut_off, clock=later, owner="next").drain()
        transport.close()

        assert statuses(app) == {"sent": count}
        received = received_per_number(server)
        assert len(received) == count and set(received.values()) == {1}
