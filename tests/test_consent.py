"""The consent ledger: derived state, late events, append-only, concurrency."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from conftest import PATIENT, inbound_params, new_sid
from gateway.core import consent_rules
from gateway.core.domain import Action, Category, ConsentStatus, Source
from gateway.services import consent
from gateway.store.models import ConsentEvent, InboundMessage

T0 = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


def practice(app, slug="shared"):
    """The practice as the app's settings have it (its double opt-in expiry included)."""
    return app.extensions["gateway.settings"].practices[slug]


def record(session, category, action, occurred_at, source=Source.STAFF):
    return consent.record(
        session, practice="shared", phone=PATIENT, category=category, action=action,
        source=source, occurred_at=occurred_at, evidence={"staff_id": "front-desk-1"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("category", "action", "expected"),
    [
        (Category.TRANSACTIONAL, None, ConsentStatus.IMPLIED),
        (Category.MARKETING, None, ConsentStatus.NONE),
        (Category.TRANSACTIONAL, Action.OPT_OUT, ConsentStatus.OPTED_OUT),
        (Category.MARKETING, Action.OPT_IN, ConsentStatus.OPTED_IN),
    ],
)
def test_state_is_derived_from_the_newest_event(category, action, expected):
    event = ConsentEvent(category=category.value, action=action.value) if action else None
    assert consent_rules.state_from(category, event).status is expected


@pytest.mark.parametrize(
    ("category", "status", "allowed"),
    [
        (Category.TRANSACTIONAL, ConsentStatus.IMPLIED, True),
        (Category.TRANSACTIONAL, ConsentStatus.OPTED_IN, True),
        (Category.TRANSACTIONAL, ConsentStatus.OPTED_OUT, False),
        (Category.MARKETING, ConsentStatus.NONE, False),
        (Category.MARKETING, ConsentStatus.PENDING, False),
        (Category.MARKETING, ConsentStatus.OPTED_IN, True),
        (Category.MARKETING, ConsentStatus.OPTED_OUT, False),
    ],
)
def test_which_states_allow_sending(category, status, allowed):
    assert consent_rules.ConsentState(category, status).allows_sending is allowed


def test_an_older_event_recorded_late_never_overrides_a_newer_one(app, session):
    record(session, Category.TRANSACTIONAL, Action.OPT_OUT, T0)
    record(session, Category.TRANSACTIONAL, Action.OPT_IN, T0 - timedelta(days=3))  # late
    session.commit()
    state = consent.current(session, practice(app), PATIENT)[Category.TRANSACTIONAL]
    assert state.status is ConsentStatus.OPTED_OUT
    assert state.since == T0
    assert not consent.may_send(session, practice(app), PATIENT, Category.TRANSACTIONAL)
    # both are kept, oldest first, as proof
    assert [e.action for e in consent.history(session, "shared", PATIENT)] == ["opt_in", "opt_out"]


def test_a_newer_event_wins(app, session):
    record(session, Category.TRANSACTIONAL, Action.OPT_OUT, T0)
    record(session, Category.TRANSACTIONAL, Action.OPT_IN, T0 + timedelta(seconds=1))
    session.commit()
    assert consent.may_send(session, practice(app), PATIENT, Category.TRANSACTIONAL)


def test_events_at_the_same_instant_resolve_to_the_one_recorded_last(app, session):
    record(session, Category.MARKETING, Action.OPT_IN, T0)
    record(session, Category.MARKETING, Action.OPT_OUT, T0)
    session.commit()
    assert consent.current(session, practice(app), PATIENT)[Category.MARKETING].status is (
        ConsentStatus.OPTED_OUT
    )


def test_categories_are_independent(app, session):
    record(session, Category.MARKETING, Action.OPT_OUT, T0)
    session.commit()
    states = consent.current(session, practice(app), PATIENT)
    assert states[Category.TRANSACTIONAL].status is ConsentStatus.IMPLIED
    assert states[Category.MARKETING].status is ConsentStatus.OPTED_OUT


def test_practices_are_independent(app, session):
    record(session, Category.TRANSACTIONAL, Action.OPT_OUT, T0)
    session.commit()
    assert consent.may_send(session, practice(app, "split"), PATIENT, Category.TRANSACTIONAL)


def test_times_come_back_timezone_aware_utc(session):
    eastern = T0.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    record(session, Category.TRANSACTIONAL, Action.OPT_OUT, eastern)
    session.commit()
    session.expire_all()
    event = session.scalar(select(ConsentEvent))
    assert event.occurred_at == T0
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_events_are_append_only(session):
    event = record(session, Category.TRANSACTIONAL, Action.OPT_OUT, T0)
    session.commit()
    event.action = Action.OPT_IN.value
    with pytest.raises(RuntimeError, match="append-only"):
        session.commit()
    session.rollback()
    assert session.scalar(select(ConsentEvent.action)) == "opt_out"


def test_replayed_inbound_adds_no_event(twilio, session):
    params = inbound_params("STOP")
    for _ in range(3):
        twilio.post("/webhooks/twilio/inbound", params)
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 2


def _race(app, bodies_and_sids, rounds=1):
    """Post the given messages at the same moment from separate threads; return the responses."""
    from conftest import TwilioActions

    results: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(bodies_and_sids))

    def post(body, sid):
        twilio = TwilioActions(app.test_client())
        barrier.wait()
        response = twilio.inbound(body, sid=sid)
        with lock:
            results.append((body, response.status_code, response.get_data(as_text=True)))

    threads = [threading.Thread(target=post, args=item) for item in bodies_and_sids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return results


def test_concurrent_stop_and_start_both_land_and_the_newest_wins(app, session):
    for _ in range(8):
        results = _race(app, [("STOP", new_sid()), ("START", new_sid())])
        assert sorted(status for _, status, _ in results) == [200, 200]
    # 8 rounds x STOP: 2 categories; a START records transactional only when it was not
    # opted in already (which one of the pair ran first decides that)
    events = consent.history(session, "shared", PATIENT)
    assert sum(e.action == "opt_out" for e in events) == 16
    assert 1 <= sum(e.action == "opt_in" for e in events) <= 8
    assert {e.category for e in events if e.action == "opt_in"} == {"transactional"}
    newest = max(
        (e for e in events if e.category == "transactional"), key=lambda e: (e.occurred_at, e.id)
    )
    state = consent.current(session, practice(app), PATIENT)[Category.TRANSACTIONAL]
    assert state.event.id == newest.id
    assert session.scalar(select(func.count()).select_from(InboundMessage)) == 16


def test_the_same_message_delivered_concurrently_is_recorded_once(app, session):
    sid = new_sid()
    results = _race(app, [("STOP", sid)] * 6)
    assert [status for _, status, _ in results] == [200] * 6
    assert len({body for _, _, body in results}) == 1  # every delivery got the same TwiML
    assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 2


@pytest.mark.parametrize(
    ("expiry_hours", "age_hours", "expected"),
    [
        (24, 23, ConsentStatus.PENDING),
        (24, 25, ConsentStatus.OPTED_OUT),  # lapsed at 24 h, not the default 168 h
        (168, 25, ConsentStatus.PENDING),
    ],
)
def test_the_state_applies_the_practices_own_double_opt_in_expiry(
    app, session, expiry_hours, age_hours, expected
):
    """Every reader of the state goes through ``consent.current`` with the practice, so none can
    fall back to the default expiry (a 21610 and the enqueue check once did)."""
    now = T0 + timedelta(days=30)
    record(session, Category.MARKETING, Action.OPT_OUT, T0)
    record(session, Category.MARKETING, Action.OPT_IN_REQUESTED, now - timedelta(hours=age_hours))
    session.commit()
    practice_ = dataclasses.replace(practice(app), double_opt_in_hours=expiry_hours)
    state = consent.current(session, practice_, PATIENT, (Category.MARKETING,), now=now)
    assert state[Category.MARKETING].status is expected
