"""Send-time policy: one due message and what is known about its recipient -> send, defer, skip.

Pure, and the whole decision: the dispatcher gathers the facts (``gateway.store.facts``: contact,
consent, suppression, recent sends; the text it rendered) and acts on the answer; nothing else
decides. It runs at the moment of sending, never at enqueue, so a STOP that arrived after enqueue
wins. Rules, first match wins:

1. ``expires_at`` passed -> skip ``expired``.
2. Something about the recipient forbids it (do-not-text, a minor and marketing, no guardian on
   file for a minor, under the practice's minimum age) -> skip with that reason.
3. Twilio said the number cannot take SMS -> skip ``invalid_number`` / ``not_mobile``.
4. No consent for the category -> skip ``opted_out`` / ``no_consent``; except that the request
   for a double opt-in's YES (a template that ``confirms_opt_in``) goes to a number whose consent
   is ``pending``. Only implied consent, and the number is on the suppression list (opted out,
   then erased) -> skip ``suppressed``.
5. The practice has no sender for the category -> skip ``no_sender``.
6. A transactional text sent under the FCC healthcare exemption (consent only implied: no express
   consent) longer than 160 characters or one segment -> skip ``too_long``.
7. Outside the local sending window, or over a frequency cap -> defer to the earliest moment that
   is inside the window in every zone of the recipient and under every cap; if that moment is at
   or after ``expires_at`` (or none exists) -> skip ``expired`` (window) / ``frequency_cap``.
   The caps (``caps``): marketing at most ``marketing_per_day`` in any 24 hours (Florida FTSA,
   Oklahoma, Maryland); transactional texts under the exemption at most
   ``transactional_per_day`` a day and ``transactional_per_week`` a week (FCC 2015 TCPA order,
   healthcare exemption: 1 and 3); transactional texts with express consent have none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from gateway.core import windows
from gateway.core.domain import Category, ConsentStatus, SkipReason, Unreachable

#: the FCC healthcare exemption's limit for one text
EXEMPT_MAX_CHARS = 160

#: the reason a deferral gives when a frequency cap (not the window alone) set its time
CAP_REASON = "frequency cap"

DAY = timedelta(hours=24)
WEEK = timedelta(days=7)
#: how far back earlier sends count: the longest period of any cap
RECENT = WEEK


@dataclass(frozen=True)
class Cap:
    """At most ``limit`` messages in any ``period`` (rolling)."""

    limit: int
    period: timedelta


@dataclass(frozen=True)
class Limits:
    """A practice's frequency limits (its practices file; the defaults are the rules' figures)."""

    #: marketing texts in any 24 hours
    marketing_per_day: int = 3
    #: transactional texts under the FCC healthcare exemption, in any 24 hours / 7 days
    transactional_per_day: int = 1
    transactional_per_week: int = 3


@dataclass(frozen=True)
class Facts:
    """What the policy needs to know about one due message (plain values: no I/O behind them)."""

    expires_at: datetime | None
    #: the recipient's consent for the category, as the consent ledger derives it
    consent_status: ConsentStatus
    #: that status allows texts of the category (the ledger's ``allows_sending``)
    consent_allows: bool
    category: Category = Category.TRANSACTIONAL
    #: the text asks for a pending double opt-in's YES (its template's ``confirms_opt_in``)
    confirms_opt_in: bool = False
    unreachable: Unreachable | None = None
    has_sender: bool = True
    #: a reason found in the recipient's record (do-not-text, minor, no guardian, age)
    recipient_block: SkipReason | None = None
    #: on the suppression list for the category (matters only while no consent event exists)
    suppressed: bool = False
    window: tuple[time, time] = (time(8, 0), time(20, 0))
    #: the recipient's zones; the window must hold in every one (the stricter reading)
    zones: tuple[str, ...] = ("America/New_York",)
    limits: Limits = Limits()
    #: when earlier messages of the same category went to this recipient (the last ``RECENT``)
    recent_sends: tuple[datetime, ...] = ()
    #: the text as it is sent (GSM-7 look-alikes put in): characters and segments
    body_chars: int = 0
    body_segments: int = 1


@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: str


@dataclass(frozen=True)
class Skip:
    reason: SkipReason


Decision = Send | Defer | Skip

_UNREACHABLE_REASON = {
    Unreachable.INVALID_NUMBER: SkipReason.INVALID_NUMBER,
    Unreachable.NOT_MOBILE: SkipReason.NOT_MOBILE,
}


def decide(facts: Facts, now: datetime) -> Decision:
    """The decision for one message at ``now`` (the rules in this module's notes, in order)."""
    if facts.expires_at is not None and now >= facts.expires_at:
        return Skip(SkipReason.EXPIRED)
    if facts.recipient_block is not None:
        return Skip(facts.recipient_block)
    if facts.unreachable is not None:
        return Skip(_UNREACHABLE_REASON[facts.unreachable])
    if not consent_allows(facts):
        if facts.consent_status is ConsentStatus.OPTED_OUT:
            return Skip(SkipReason.OPTED_OUT)
        return Skip(SkipReason.NO_CONSENT)
    if facts.suppressed and facts.consent_status is ConsentStatus.IMPLIED:
        return Skip(SkipReason.SUPPRESSED)
    if not facts.has_sender:
        return Skip(SkipReason.NO_SENDER)
    if exempt(facts) and (facts.body_chars > EXEMPT_MAX_CHARS or facts.body_segments > 1):
        return Skip(SkipReason.TOO_LONG)

    slot, capped = earliest_slot(facts, now)
    if slot is None or (facts.expires_at is not None and slot >= facts.expires_at):
        return Skip(SkipReason.FREQUENCY_CAP if capped else SkipReason.EXPIRED)
    if slot == now:
        return Send()
    window = windows.Window(*facts.window)
    reason = CAP_REASON if capped else f"outside the sending window {window} local time"
    return Defer(until=slot, reason=reason)


def consent_allows(facts: Facts) -> bool:
    """Consent allows this text: the category's consent does, or the text is the request for a
    double opt-in's YES and that opt-in is pending (the YES cannot be asked for otherwise)."""
    return facts.consent_allows or (
        facts.confirms_opt_in and facts.consent_status is ConsentStatus.PENDING
    )


def exempt(facts: Facts) -> bool:
    """The text is sent under the FCC healthcare exemption, so its limits (one segment of 160
    characters, ``caps``) apply: a transactional text without express consent (only implied)."""
    return (
        facts.category is Category.TRANSACTIONAL and facts.consent_status is ConsentStatus.IMPLIED
    )


def max_chars(facts: Facts) -> int | None:
    """The longest text the policy lets through (``EXEMPT_MAX_CHARS`` under the exemption, else
    None: no limit), so that a shorter form can be rendered before deciding."""
    return EXEMPT_MAX_CHARS if exempt(facts) else None


def caps(facts: Facts) -> tuple[Cap, ...]:
    """The frequency caps on this text (the rule 7 in this module's notes)."""
    limits = facts.limits
    if facts.category is Category.MARKETING:
        return (Cap(limits.marketing_per_day, DAY),)
    if exempt(facts):
        return (Cap(limits.transactional_per_day, DAY), Cap(limits.transactional_per_week, WEEK))
    return ()


def earliest_slot(facts: Facts, now: datetime) -> tuple[datetime | None, bool]:
    """The first moment >= now inside the window in every zone and under every cap; and whether
    a cap (rather than the window alone) pushed it later."""
    window = windows.Window(*facts.window)
    on_text = caps(facts)
    moment, capped = now, False
    for _ in range(16):  # each round moves forward; a handful always suffices
        released = cap_release(moment, facts.recent_sends, on_text)
        if released > moment:
            moment, capped = released, True
        opening = windows.next_opening(window, moment, facts.zones)
        if opening is None:
            return None, capped
        if opening == moment:
            return moment, capped
        moment = opening
    return None, capped


def cap_release(moment: datetime, sends: Sequence[datetime], caps: Sequence[Cap]) -> datetime:
    """The earliest instant >= ``moment`` at which one more send stays under every cap."""
    release = moment
    for cap in caps:
        inside = sorted(s for s in sends if moment - cap.period < s <= moment)
        if len(inside) >= cap.limit:
            # when the oldest of the last ``limit`` sends leaves the rolling period
            release = max(release, inside[-cap.limit] + cap.period)
    return release
