"""Per-sender pacing: slots shared through the database, a horizon, clock steps; and the slots
several dispatchers together reserve while sending to a Twilio-compatible server."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from conftest import AUTH_TOKEN, patient
from gateway.config import ConfigError, parse_practices
from gateway.services.dispatch import Dispatcher
from gateway.services.transport import SendError, TwilioTransport
from gateway.store.models import OutboundMessage
from gateway.store.pacing import SKEW, Busy, Pacer, Slot
from twilio_server import TwilioServer

SENDER = "+17865550100"
ACCOUNT_SID = "AC" + "3" * 32


class FakeTime:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def sessions(app):
    return app.extensions["gateway.db"].sessions


def test_slots_are_one_interval_apart_up_to_the_horizon(sessions):
    clock = FakeTime()
    pacer = Pacer(sessions, {SENDER: 4.0}, horizon=2.0, now=clock, sleep=clock.sleep)
    taken = [pacer.reserve(SENDER) for _ in range(10)]
    start = clock.now
    assert taken[:9] == [Slot(start + k * 0.25) for k in range(9)]
    assert taken[9] == Busy(start + 2.25)
    pacer.wait(taken[8])
    assert clock.now == start + 2.0
    assert pacer.reserve(SENDER) == Slot(start + 2.25)


def test_two_pacers_share_one_sender_through_the_database(sessions):
    clock = FakeTime()
    first, second = (Pacer(sessions, {SENDER: 2.0}, now=clock, sleep=clock.sleep) for _ in "ab")
    slots = [p.reserve(SENDER) for p in (first, second, first, second)]
    assert [s.at - clock.now for s in slots] == [0.0, 0.5, 1.0, 1.5]


def test_an_idle_sender_starts_now_and_unpaced_senders_never_wait(sessions):
    clock = FakeTime()
    pacer = Pacer(sessions, {SENDER: 1.0, "+13125550110": None}, now=clock, sleep=clock.sleep)
    assert pacer.reserve(SENDER) == Slot(clock.now)
    clock.now += 3600
    assert pacer.reserve(SENDER) == Slot(clock.now)  # no burst credit piles up while idle
    assert not pacer.paced("+13125550110")
    assert all(pacer.reserve("+13125550110") == Slot(clock.now) for _ in range(50))


def test_a_clock_that_stepped_back_does_not_stall_the_sender(sessions):
    clock = FakeTime()
    pacer = Pacer(sessions, {SENDER: 1.0}, now=clock, sleep=clock.sleep)
    pacer.reserve(SENDER)
    clock.now -= 3600  # the clock was an hour fast, and NTP stepped it back
    assert pacer.reserve(SENDER) == Slot(clock.now)
    clock.now -= SKEW / 2  # a small step back is a queue (other machines' clocks), not stale
    assert pacer.reserve(SENDER) == Busy(clock.now + SKEW / 2 + 1)


class RecordingPacer(Pacer):
    """The real pacer, noting each slot it reserves (into a list shared by several pacers)."""

    def __init__(self, *args, slots: list[float], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slots = slots

    def reserve_many(self, sender: str, count: int) -> list[Slot] | Busy:
        taken = super().reserve_many(sender, count)
        if not isinstance(taken, Busy):
            self.slots.extend(slot.at for slot in taken)
        return taken


def test_dispatchers_together_keep_the_senders_rate(app, api, clock):
    """Two dispatchers with eight threads each share one sender at 20 messages/s: every send
    holds a slot of its own from the pacing table, the slots are at least 1/20 s apart, and no
    send starts before its slot. These hold on a machine of any speed or load; how closely the
    sends follow their slots is a figure for bench/, not a test."""
    rate, count = 20.0, 50
    interval = 1 / rate
    slots: list[float] = []
    with TwilioServer(ACCOUNT_SID, AUTH_TOKEN, latency=0.02) as server:
        transport = TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url=server.url, timeout=60)
        app.extensions["gateway.transport"] = transport
        with contextlib.suppress(SendError):  # the SDK loads its resources on first use
            transport.fetch("SM" + "0" * 32)
        for n in range(count):
            api.enqueue(id=f"appt-{n}", to=patient(n), expires_at=None)
        # the dispatchers' clock and the pacer's tick together from the test's daytime moment
        started, base = time.monotonic(), clock.now

        def ticking() -> datetime:
            return base + timedelta(seconds=time.monotonic() - started)

        database = app.extensions["gateway.db"]
        dispatchers = [
            Dispatcher.from_app(
                app, clock=ticking, owner=f"d{n}", batch=25, concurrency=8,
                pacer=RecordingPacer(database.sessions, {SENDER: rate}, slots=slots,
                                     now=lambda: ticking().timestamp()),
            )
            for n in range(2)
        ]  # fmt: skip

        def work(dispatcher: Dispatcher) -> None:
            hang_guard = time.monotonic() + 600  # only a hung test ever reaches it
            while len(server.messages) < count and time.monotonic() < hang_guard:
                dispatcher.drain()  # what was put back behind the pace comes due again
                time.sleep(0.05)

        threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        transport.close()

    # every reminder sent once, each under a slot of its own
    assert sorted(m["to"] for m in server.messages) == sorted(patient(n) for n in range(count))
    assert len([r for r in server.requests if r.method == "POST"]) == count
    assert len(slots) == count
    # the pacing table handed out distinct slots, one interval apart at least
    ordered = sorted(slots)
    gaps = [later - earlier for earlier, later in zip(ordered, ordered[1:], strict=False)]
    assert min(gaps) >= interval - 1e-6
    # and no send started before its slot (the i-th start is not before the i-th slot)
    with database.sessions() as session:
        starts = sorted(
            moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()
            for moment in session.scalars(select(OutboundMessage.send_started_at))
        )
    assert len(starts) == count
    assert all(start >= slot - 1e-5 for start, slot in zip(starts, ordered, strict=True))


def test_rate_limits_in_the_practices_file():
    table = {
        "name": "X", "time_zone": "America/New_York", "help_contact": "+1 786-305-8649",
        "senders": {"transactional": "+17865550100", "marketing": "+17865550100"},
    }  # fmt: skip
    practice = parse_practices({"practices": {"x": table}})["x"]
    assert set(practice.rates.values()) == {1.0}  # a long code's guaranteed throughput
    practice = parse_practices(
        {"practices": {"x": {**table, "rate_limit": {"transactional": 12, "marketing": 0}}}}
    )["x"]
    assert dict(practice.rates) == {practice_category("transactional"): 12.0,
                                    practice_category("marketing"): None}  # fmt: skip
    for bad in (-1, 0.05, 10_001, "fast", True):
        with pytest.raises(ConfigError, match=r"rate_limit\.transactional"):
            parse_practices({"practices": {"x": {**table, "rate_limit": {"transactional": bad}}}})
    with pytest.raises(ConfigError, match=r"rate_limit\.promotions: unknown category"):
        parse_practices({"practices": {"x": {**table, "rate_limit": {"promotions": 1}}}})


def test_a_shared_sender_gets_the_lowest_rate_of_its_categories(make_app, database_url):
    settings = make_app(database_url).extensions["gateway.settings"]
    rates = settings.sender_rates()
    assert rates["+17865550100"] == 1000.0
    assert rates["MG0123456789abcdef0123456789abcdef"] is None  # 0: no limit in the gateway


def practice_category(name: str):
    from gateway.core.domain import Category

    return Category(name)


def test_messages_behind_the_pace_come_back_in_order(app, api, clock, sessions):
    """At 1 message/s the first pass sends what fits in the horizon and puts the rest back,
    one second apart, instead of re-claiming them all on every pass."""
    from gateway.services.transport import ConsoleTransport

    app.extensions["gateway.transport"] = ConsoleTransport(stream=__import__("io").StringIO())
    for n in range(8):
        api.enqueue(id=f"appt-{n}", to=patient(n), expires_at=None)
    fake = FakeTime(clock.now.timestamp())
    pacer = Pacer(sessions, {SENDER: 1.0}, now=fake, sleep=lambda _: None)  # time stands still
    summary = Dispatcher.from_app(app, clock=clock, pacer=pacer, concurrency=1).run_pass()
    assert (summary.sent, summary.paced) == (3, 5)  # slots at +0, +1, +2 s
    waiting = sorted(
        api.reminder(f"appt-{n}")["next_attempt_at"] for n in range(8)
        if api.reminder(f"appt-{n}")["status"] == "scheduled"
    )  # fmt: skip
    assert len(set(waiting)) == 5
