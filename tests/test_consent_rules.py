"""The consent rules (gateway.core.consent_rules): state from events, and what STOP/START cover."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core import consent_rules
from gateway.core.consent_rules import DEFAULT_PENDING_TTL, ConsentState, reinstated, revoked
from gateway.core.domain import Action, Category, ConsentStatus, Source
from gateway.core.keywords import Scope

T0 = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
TTL = timedelta(hours=48)
TX, MK = Category.TRANSACTIONAL, Category.MARKETING
IN, OUT, REQ = Action.OPT_IN, Action.OPT_OUT, Action.OPT_IN_REQUESTED
IMPLIED, NONE, PENDING = ConsentStatus.IMPLIED, ConsentStatus.NONE, ConsentStatus.PENDING
OPTED_IN, OPTED_OUT = ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT

_ids = count(1)


@dataclass(frozen=True)
class Ev:
    """A consent event as the rules see it; ``id`` is the insertion order."""

    category: Category
    action: Action
    occurred_at: datetime
    source: Source = Source.STAFF
    id: int = 0


def ev(category: Category, action: Action, hours_ago: float) -> Ev:
    return Ev(category, action, T0 - timedelta(hours=hours_ago), id=next(_ids))


def newest_first(events: list[Ev]) -> list[Ev]:
    """The ledger's order: ``occurred_at`` descending, then insertion order descending."""
    return sorted(events, key=lambda e: (e.occurred_at, e.id), reverse=True)


def statuses_of(events: list[Ev], categories=(TX, MK)) -> dict[Category, ConsentStatus]:
    found = consent_rules.states(newest_first(events), categories, now=T0, pending_ttl=TTL)
    return {category: state.status for category, state in found.items()}


@pytest.mark.parametrize(
    ("category", "action", "expected"),
    [
        (TX, None, IMPLIED),
        (MK, None, NONE),
        (TX, IN, OPTED_IN),
        (MK, IN, OPTED_IN),
        (TX, OUT, OPTED_OUT),
        (MK, OUT, OPTED_OUT),
        (TX, REQ, PENDING),
        (MK, REQ, PENDING),
    ],
)
def test_status_of_an_action_and_of_no_event(category, action, expected):
    assert consent_rules.status_of(category, action) is expected


def test_status_of_reads_a_stored_action_string_as_its_action():
    assert consent_rules.status_of(MK, "opt_in_requested") is PENDING


@pytest.mark.parametrize(
    ("category", "status", "allowed"),
    [
        (TX, IMPLIED, True),
        (TX, OPTED_IN, True),
        (TX, OPTED_OUT, False),
        (TX, PENDING, False),
        (TX, NONE, False),
        (MK, NONE, False),
        (MK, IMPLIED, False),
        (MK, PENDING, False),
        (MK, OPTED_IN, True),
        (MK, OPTED_OUT, False),
    ],
)
def test_may_send_in(category, status, allowed):
    assert consent_rules.may_send_in(category, status) is allowed
    assert ConsentState(category, status).allows_sending is allowed


def test_a_state_shows_its_event_or_nothing():
    event = ev(MK, IN, 2)
    state = consent_rules.state_from(MK, event)
    assert (state.status, state.since, state.source, state.event) == (
        OPTED_IN, event.occurred_at, Source.STAFF, event,
    )  # fmt: skip
    empty = consent_rules.state_from(TX, None)
    assert (empty.status, empty.since, empty.source, empty.event) == (IMPLIED, None, None, None)


@pytest.mark.parametrize(
    ("action", "age", "expected"),
    [
        (REQ, TTL - timedelta(seconds=1), False),
        (REQ, TTL, False),  # lapses only once the whole expiry has passed
        (REQ, TTL + timedelta(microseconds=1), True),
        (REQ, timedelta(days=400), True),
        (IN, timedelta(days=400), False),  # only a request awaiting YES lapses
        (OUT, timedelta(days=400), False),
    ],
)
def test_only_an_unanswered_double_opt_in_request_lapses(action, age, expected):
    event = Ev(MK, action, T0 - age)
    assert consent_rules.lapsed(event, now=T0, pending_ttl=TTL) is expected


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([], {TX: IMPLIED, MK: NONE}, id="no event: category fallback"),
        pytest.param([(MK, IN, 5)], {TX: IMPLIED, MK: OPTED_IN}, id="fallback per category"),
        pytest.param([(TX, OUT, 1), (TX, IN, 2)], {TX: OPTED_OUT, MK: NONE}, id="newest wins"),
        pytest.param([(TX, IN, 1), (TX, OUT, 2)], {TX: OPTED_IN, MK: NONE}, id="newest wins again"),
        pytest.param([(MK, REQ, 47)], {TX: IMPLIED, MK: PENDING}, id="live request"),
        pytest.param([(MK, REQ, 49)], {TX: IMPLIED, MK: NONE}, id="lapsed request, no event"),
        pytest.param(
            [(MK, REQ, 49), (MK, OUT, 100)], {TX: IMPLIED, MK: OPTED_OUT},
            id="lapsed request: the event before it stands",
        ),  # fmt: skip
        pytest.param(
            [(MK, REQ, 49), (MK, IN, 60)], {TX: IMPLIED, MK: OPTED_IN},
            id="lapsed request over an opt-in",
        ),  # fmt: skip
        pytest.param(
            [(MK, IN, 1), (MK, REQ, 2)], {TX: IMPLIED, MK: OPTED_IN}, id="request answered"
        ),
        pytest.param(
            [(MK, OUT, 1), (TX, OUT, 3), (TX, IN, 2)], {TX: OPTED_IN, MK: OPTED_OUT},
            id="categories apart",
        ),  # fmt: skip
    ],
)
def test_state_is_the_newest_event_that_stands(events, expected):
    assert statuses_of([ev(*e) for e in events]) == expected


def test_a_tie_on_occurred_at_goes_to_the_event_recorded_last():
    first = Ev(TX, OUT, T0, id=1)
    second = Ev(TX, IN, T0, id=2)
    assert statuses_of([first, second])[TX] is OPTED_IN
    assert statuses_of([second, first])[TX] is OPTED_IN


def test_only_the_categories_asked_for_and_in_their_order():
    events = newest_first([ev(TX, OUT, 1), ev(MK, IN, 2)])
    found = consent_rules.states(events, (MK,), now=T0, pending_ttl=TTL)
    assert list(found) == [MK]
    found = consent_rules.statuses(events, (MK, TX), now=T0, pending_ttl=TTL)
    assert found == {MK: OPTED_IN, TX: OPTED_OUT} and list(found) == [MK, TX]


def test_reading_stops_once_every_category_is_found():
    def rows() -> Iterator[Ev]:
        yield ev(TX, OUT, 1)
        yield ev(MK, REQ, 100)  # lapsed: passed over, reading goes on
        yield ev(MK, IN, 200)
        raise AssertionError("read past the events that decide")

    found = consent_rules.newest_standing(rows(), (TX, MK), now=T0, pending_ttl=TTL)
    assert {c: e.action for c, e in found.items()} == {TX: OUT, MK: IN}


def test_the_default_and_the_practices_double_opt_in_expiry():
    @dataclass
    class Practice:
        double_opt_in_hours: int

    assert timedelta(hours=168) == DEFAULT_PENDING_TTL
    assert consent_rules.pending_ttl(Practice(36)) == timedelta(hours=36)


# -- properties -----------------------------------------------------------------------------------

events_strategy = st.lists(
    st.builds(
        Ev,
        category=st.sampled_from(Category),
        action=st.sampled_from(Action),
        occurred_at=st.integers(0, 24 * 10).map(lambda h: T0 - timedelta(hours=h)),
        source=st.sampled_from(Source),
        id=st.integers(1, 10_000),
    ),
    max_size=12,
    unique_by=lambda e: e.id,
)
ttl_strategy = st.integers(1, 24 * 8).map(lambda h: timedelta(hours=h))


def oracle(events: list[Ev], category: Category, ttl: timedelta) -> ConsentStatus:
    """The rule as its docstring states it, the slow way: the newest standing event, or none."""
    standing = [
        e for e in events
        if e.category is category and not (e.action is REQ and T0 - e.occurred_at > ttl)
    ]  # fmt: skip
    if not standing:
        return IMPLIED if category is TX else NONE
    newest = max(standing, key=lambda e: (e.occurred_at, e.id))
    return {IN: OPTED_IN, OUT: OPTED_OUT, REQ: PENDING}[newest.action]


@given(events_strategy, ttl_strategy, st.permutations(list(Category)))
def test_states_follow_the_rule_whatever_the_events(events, ttl, categories):
    ordered = newest_first(events)
    found = consent_rules.states(ordered, categories, now=T0, pending_ttl=ttl)
    assert list(found) == categories
    derived = {c: s.status for c, s in found.items()}
    assert derived == {c: oracle(events, c, ttl) for c in categories}
    assert consent_rules.statuses(ordered, categories, now=T0, pending_ttl=ttl) == derived
    for category, state in found.items():
        assert state.category is category
        assert state.event is None or (state.event in events and state.event.category is category)


@given(events_strategy, ttl_strategy, st.sampled_from(Category), st.sampled_from(Action))
def test_an_older_event_recorded_late_changes_nothing(events, ttl, category, action):
    before = consent_rules.states(newest_first(events), (category,), now=T0, pending_ttl=ttl)
    standing = before[category].event
    if standing is None:
        return
    late = Ev(category, action, standing.occurred_at - timedelta(minutes=1), id=20_000)
    after = consent_rules.states(
        newest_first([*events, late]), (category,), now=T0, pending_ttl=ttl
    )
    assert after[category] == before[category]


@given(events_strategy, st.sampled_from(Category), st.sampled_from(Action))
def test_a_newer_event_wins(events, category, action):
    newest = Ev(category, action, T0, id=20_000)  # not lapsed: it happened just now
    found = consent_rules.states(
        newest_first([*events, newest]), (category,), now=T0, pending_ttl=TTL
    )
    assert found[category].event is newest
    assert found[category].status is consent_rules.status_of(category, action)


# -- coverage: what a STOP or START covers --------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "carried", "expected"),
    [
        (Scope.SENDER, (TX,), (TX,)),
        (Scope.SENDER, (MK,), (MK,)),
        (Scope.SENDER, (TX, MK), (TX, MK)),
        (Scope.SENDER, (), (TX, MK)),  # a sender that carries nothing any more: everything
        (Scope.PRACTICE, (TX,), (TX, MK)),  # STOPALL
        (Scope.PRACTICE, (), (TX, MK)),
        (Scope.MARKETING, (TX,), (MK,)),  # "no more promotions"
        (Scope.MARKETING, (TX, MK), (MK,)),
    ],
)
def test_what_a_revocation_covers(scope, carried, expected):
    assert revoked(scope, carried) == expected


@given(st.sampled_from(Scope), st.lists(st.sampled_from(Category), unique=True).map(tuple))
def test_a_revocation_never_revokes_nothing(scope, carried):
    assert revoked(scope, carried)


@pytest.mark.parametrize(
    ("carried", "statuses", "had_marketing", "affirms", "expected"),
    [
        pytest.param((TX, MK), {TX: OPTED_OUT, MK: OPTED_OUT}, True, True, (TX, MK),
                     id="both back with earlier marketing consent"),
        pytest.param((TX, MK), {TX: OPTED_OUT, MK: OPTED_OUT}, False, True, (TX,),
                     id="START never creates marketing consent"),
        pytest.param((TX,), {TX: OPTED_OUT, MK: OPTED_OUT}, True, True, (TX,),
                     id="only what the sender carries"),
        pytest.param((TX,), {TX: IMPLIED}, False, True, (TX,),
                     id="START makes implied care consent express"),
        pytest.param((TX,), {TX: IMPLIED}, False, False, (),
                     id="a YES does not"),
        pytest.param((TX,), {TX: OPTED_OUT}, False, False, (TX,),
                     id="a YES lifts an opt-out"),
        pytest.param((TX,), {TX: OPTED_IN}, False, True, (),
                     id="already express"),
        pytest.param((MK,), {MK: NONE}, False, True, (),
                     id="marketing never comes from START"),
        pytest.param((MK,), {MK: PENDING}, True, True, (),
                     id="a pending request is not opted out"),
    ],
)  # fmt: skip
def test_what_a_resubscription_covers(carried, statuses, had_marketing, affirms, expected):
    assert reinstated(
        carried, statuses, had_marketing_consent=had_marketing, affirms_implied=affirms
    ) == expected


@given(
    st.lists(st.sampled_from(Category), unique=True).map(tuple),
    st.fixed_dictionaries({c: st.sampled_from(ConsentStatus) for c in Category}),
    st.booleans(),
    st.booleans(),
)
def test_a_resubscription_stays_within_the_sender(carried, statuses, had_marketing, affirms):
    chosen = reinstated(
        carried, statuses, had_marketing_consent=had_marketing, affirms_implied=affirms
    )
    assert set(chosen) <= set(carried)
    assert MK not in chosen or (statuses[MK] is OPTED_OUT and had_marketing)
