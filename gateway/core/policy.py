"""Send-time policy: one due message and what is known about its recipient -> send, defer, skip.

Pure: the dispatcher gathers the facts (consent, contact, clock, recent sends) and acts on the
decision; nothing else decides. It runs at the moment of sending, never at enqueue, so a STOP
that arrived after enqueue wins. Rules, first match wins:

1. ``expires_at`` passed -> skip ``expired``.
2. Something about the recipient forbids it (do-not-text, a minor and marketing, no guardian on
   file for a minor, under the practice's minimum age) -> skip with that reason.
3. Twilio said the number cannot take SMS -> skip ``invalid_number`` / ``not_mobile``.
4. No consent for the category -> skip ``opted_out`` / ``no_consent``; only implied consent, and
   the number is on the suppression list (opted out, then erased) -> skip ``suppressed``.
5. The practice has no sender for the category -> skip ``no_sender``.
6. A transactional text sent under the FCC healthcare exemption (no express consent) longer than
   160 characters or one segment -> skip ``too_long``.
7. Outside the local sending window, or over a frequency cap -> defer to the earliest moment that
   is inside the window in every zone of the recipient and under every cap; if that moment is at
   or after ``expires_at`` (or none exists) -> skip ``expired`` (window) / ``frequency_cap``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from gateway.core import windows
from gateway.core.domain import ConsentStatus, SkipReason, Unreachable

#: the FCC healthcare exemption's limit for one text
EXEMPT_MAX_CHARS = 160

#: the reason a deferral gives when a frequency cap (not the window alone) set its time
CAP_REASON = "frequency cap"


@dataclass(frozen=True)
class Cap:
    """At most ``limit`` messages in any ``period`` (rolling)."""

    limit: int
    period: timedelta


@dataclass(frozen=True)
class Facts:
    """What the policy needs to know about one due message."""

    expires_at: datetime | None
    consent_status: ConsentStatus
    consent_allows: bool
    unreachable: Unreachable | None = None
    has_sender: bool = True
    #: a reason found in the recipient's record (do-not-text, minor, no guardian, age)
    recipient_block: SkipReason | None = None
    #: on the suppression list for the category (matters only while no consent event exists)
    suppressed: bool = False
    window: tuple[time, time] = (time(8, 0), time(20, 0))
    #: the recipient's zones; the window must hold in every one (the stricter reading)
    zones: tuple[str, ...] = ("America/New_York",)
    caps: tuple[Cap, ...] = ()
    #: when earlier messages of the same category went to this recipient (the last 7 days)
    recent_sends: tuple[datetime, ...] = ()
    #: the FCC healthcare exemption's content limits apply (transactional without express consent)
    exempt_limits: bool = False
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
    """The decision for one message at ``now``."""
    if facts.expires_at is not None and now >= facts.expires_at:
        return Skip(SkipReason.EXPIRED)
    if facts.recipient_block is not None:
        return Skip(facts.recipient_block)
    if facts.unreachable is not None:
        return Skip(_UNREACHABLE_REASON[facts.unreachable])
    if not facts.consent_allows:
        if facts.consent_status is ConsentStatus.OPTED_OUT:
            return Skip(SkipReason.OPTED_OUT)
        return Skip(SkipReason.NO_CONSENT)
    if facts.suppressed and facts.consent_status is ConsentStatus.IMPLIED:
        return Skip(SkipReason.SUPPRESSED)
    if not facts.has_sender:
        return Skip(SkipReason.NO_SENDER)
    if facts.exempt_limits and (facts.body_chars > EXEMPT_MAX_CHARS or facts.body_segments > 1):
        return Skip(SkipReason.TOO_LONG)

    slot, capped = earliest_slot(facts, now)
    if slot is None or (facts.expires_at is not None and slot >= facts.expires_at):
        return Skip(SkipReason.FREQUENCY_CAP if capped else SkipReason.EXPIRED)
    if slot == now:
        return Send()
    window = windows.Window(*facts.window)
    reason = CAP_REASON if capped else f"outside the sending window {window} local time"
    return Defer(until=slot, reason=reason)


def earliest_slot(facts: Facts, now: datetime) -> tuple[datetime | None, bool]:
    """The first moment >= now inside the window in every zone and under every cap; and whether
    a cap (rather than the window alone) pushed it later."""
    window = windows.Window(*facts.window)
    moment, capped = now, False
    for _ in range(16):  # each round moves forward; a handful always suffices
        released = cap_release(moment, facts.recent_sends, facts.caps)
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
