"""The consent rules: the state a number's events leave each category in, and what a revocation or
a re-subscription covers. The one home of these rules (pure, no I/O); the ledger
(``gateway.store.ledger``) reads the events, ``gateway.services.consent`` applies the rules to them.

State (DESIGN "Consent"):

- State is per (practice, phone, category). It is the newest event by ``occurred_at`` (ties broken
  by insertion order) that still stands, so an older event recorded late, or a replay, never
  overrides a newer one. A double opt-in request (``opt_in_requested``) unanswered for the
  practice's ``double_opt_in_hours`` has lapsed: it is passed over, and the state is what the
  events before it made it.
- No event yet means ``implied`` for transactional messages (the patient gave the practice the
  number) and ``none`` for marketing.
- Transactional messages may be sent when consent is implied or express; marketing only with
  express consent (47 CFR 64.1200(a)(2)).

Coverage:

- A STOP (or a plain-language revocation) to a sender revokes every category that sender carries:
  Twilio blocks the whole number (or Messaging Service) after a STOP, and the FCC's "revoke all"
  rule (47 CFR 64.1200(a)(10), FCC 24-24) reads a revocation broadly. STOPALL revokes every
  category of the practice; "no more promotions" revokes marketing only.
- A sender that carries no category of the practice any more (its senders changed since) revokes
  every category: a revocation must never end up revoking nothing.
- START (or UNSTOP, ALTA, YES) to a sender lifts only what that sender carries, and only what was
  opted out (START also makes implied care-message consent express). Marketing comes back only
  where the patient had given express consent to it before
  the opt-out (47 CFR 64.1200(a)(2): marketing needs prior express written consent; a START does
  not create it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from gateway.core.domain import Action, Category, ConsentStatus, Source
from gateway.core.keywords import Scope

__all__ = [
    "DEFAULT_PENDING_TTL",
    "ConsentState",
    "Event",
    "SourcedEvent",
    "lapsed",
    "may_send_in",
    "newest_standing",
    "pending_ttl",
    "reinstated",
    "revoked",
    "state_from",
    "states",
    "status_of",
    "statuses",
]

#: how long a double opt-in request waits for its YES, unless the practice says otherwise
DEFAULT_PENDING_TTL = timedelta(hours=168)

_STATUS_OF_ACTION = {
    Action.OPT_IN: ConsentStatus.OPTED_IN,
    Action.OPT_OUT: ConsentStatus.OPTED_OUT,
    Action.OPT_IN_REQUESTED: ConsentStatus.PENDING,
}
_NO_EVENT_STATUS = {
    Category.TRANSACTIONAL: ConsentStatus.IMPLIED,
    Category.MARKETING: ConsentStatus.NONE,
}
_MAY_SEND = {
    Category.TRANSACTIONAL: frozenset({ConsentStatus.IMPLIED, ConsentStatus.OPTED_IN}),
    Category.MARKETING: frozenset({ConsentStatus.OPTED_IN}),
}


class Event(Protocol):
    """What the state rule reads of a consent event: a ``ConsentEvent`` row, or a row of just
    these columns."""

    @property
    def category(self) -> Category: ...

    @property
    def action(self) -> Action: ...

    @property
    def occurred_at(self) -> datetime: ...


class SourcedEvent(Event, Protocol):
    """An event that also says how the gateway learned of it (shown with the state)."""

    @property
    def source(self) -> Source: ...


class DoubleOptIn(Protocol):
    """A practice's double opt-in setting (``gateway.config.Practice``)."""

    @property
    def double_opt_in_hours(self) -> int: ...


E = TypeVar("E", bound=Event)
S = TypeVar("S", bound=SourcedEvent)


@dataclass(frozen=True)
class ConsentState(Generic[S]):
    """The current consent of one category, and the event that set it (None: no event yet)."""

    category: Category
    status: ConsentStatus
    event: S | None = None

    @property
    def since(self) -> datetime | None:
        """When the event that set the state happened (None: no event yet)."""
        return self.event.occurred_at if self.event is not None else None

    @property
    def source(self) -> Source | None:
        """How the gateway learned of that event (None: no event yet)."""
        return self.event.source if self.event is not None else None

    @property
    def allows_sending(self) -> bool:
        """Whether the state lets a message of its category go (``may_send_in``)."""
        return may_send_in(self.category, self.status)


def status_of(category: Category, action: Action | None) -> ConsentStatus:
    """The status an event's action leaves its category in; ``None``: no event yet (implied for
    transactional, none for marketing)."""
    return _NO_EVENT_STATUS[category] if action is None else _STATUS_OF_ACTION[action]


def may_send_in(category: Category, status: ConsentStatus) -> bool:
    """Whether a message of ``category`` may be sent in ``status``: transactional with implied or
    express consent, marketing with express consent only."""
    return status in _MAY_SEND[category]


def state_from(category: Category, event: S | None) -> ConsentState[S]:
    """The state an event (the newest that stands; None: none) leaves its category in."""
    return ConsentState(category, status_of(category, event.action if event else None), event)


def pending_ttl(practice: DoubleOptIn) -> timedelta:
    """How long the practice's double opt-in requests wait for their YES
    (``double_opt_in_hours``)."""
    return timedelta(hours=practice.double_opt_in_hours)


def lapsed(event: Event, *, now: datetime, pending_ttl: timedelta) -> bool:
    """Whether ``event`` is a double opt-in request left unanswered for longer than
    ``pending_ttl`` at ``now`` (it then no longer counts)."""
    return event.action == Action.OPT_IN_REQUESTED and now - event.occurred_at > pending_ttl


def newest_standing(
    events: Iterable[E],
    categories: Collection[Category],
    *,
    now: datetime,
    pending_ttl: timedelta,
) -> dict[Category, E]:
    """Of ``events`` given newest first (by ``occurred_at``, then insertion order), each wanted
    category's newest event that has not ``lapsed``; a category without one is left out. Events
    of other categories are ignored; stops reading once every category is found."""
    wanted = frozenset(categories)
    newest: dict[Category, E] = {}
    for event in events:
        category = event.category
        if (
            category in wanted
            and category not in newest
            and not lapsed(event, now=now, pending_ttl=pending_ttl)
        ):
            newest[category] = event
        if len(newest) == len(wanted):
            break
    return newest


def states(
    events: Iterable[S],
    categories: Collection[Category],
    *,
    now: datetime,
    pending_ttl: timedelta,
) -> dict[Category, ConsentState[S]]:
    """The state of each of ``categories`` (in their order) from ``events`` given newest first:
    ``newest_standing``, and the no-event status where a category has none."""
    newest = newest_standing(events, categories, now=now, pending_ttl=pending_ttl)
    return {category: state_from(category, newest.get(category)) for category in categories}


def statuses(
    events: Iterable[Event],
    categories: Collection[Category],
    *,
    now: datetime,
    pending_ttl: timedelta,
) -> dict[Category, ConsentStatus]:
    """The status of each of ``categories`` (in their order), as ``states`` derives it, from
    events that need not carry a source."""
    newest = newest_standing(events, categories, now=now, pending_ttl=pending_ttl)
    actions = {category: event.action for category, event in newest.items()}
    return {category: status_of(category, actions.get(category)) for category in categories}


def revoked(scope: Scope, sender_categories: tuple[Category, ...]) -> tuple[Category, ...]:
    """The categories an opt-out of ``scope`` revokes, texted to a sender carrying
    ``sender_categories``; never empty."""
    if scope is Scope.PRACTICE:
        return tuple(Category)
    if scope is Scope.MARKETING:
        return (Category.MARKETING,)
    return sender_categories or tuple(Category)


def reinstated(
    sender_categories: tuple[Category, ...],
    statuses: Mapping[Category, ConsentStatus],
    *,
    had_marketing_consent: bool,
    affirms_implied: bool,
) -> tuple[Category, ...]:
    """The categories an opt-in keyword texted to a sender carrying ``sender_categories`` opts
    in, given the current ``statuses`` and whether express marketing consent was ever given;
    may be empty.

    - A category that was opted out comes back (marketing only with earlier express consent).
    - With ``affirms_implied`` (START, UNSTOP, ALTA: a request to receive texts), transactional
      consent that was only implied becomes express. YES and SI do not: a YES from a number that
      is neither opted out nor asked to confirm a double opt-in records nothing.
    """
    chosen = []
    for category in sender_categories:
        status = statuses.get(category)
        if status is ConsentStatus.OPTED_OUT:
            if category is not Category.MARKETING or had_marketing_consent:
                chosen.append(category)
        elif (
            affirms_implied
            and category is Category.TRANSACTIONAL
            and status is not ConsentStatus.OPTED_IN
        ):
            chosen.append(category)
    return tuple(chosen)
