"""Send-time policy: one due message and what is known about its number -> send, defer or skip.

Pure: the caller gathers the facts (consent, contact, clock) and acts on the decision. It runs at
the moment of sending, never at enqueue, so a STOP that arrived after enqueue wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.domain import ConsentStatus, SkipReason, Unreachable


@dataclass(frozen=True)
class Facts:
    """What the policy needs to know about one due message."""

    expires_at: datetime | None
    consent_status: ConsentStatus
    consent_allows: bool
    #: why the number cannot receive SMS, if Twilio said so
    unreachable: Unreachable | None = None
    has_sender: bool = True


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
    """The decision for one message at ``now``; the first rule that applies wins."""
    if facts.expires_at is not None and now >= facts.expires_at:
        return Skip(SkipReason.EXPIRED)
    if facts.unreachable is not None:
        return Skip(_UNREACHABLE_REASON[facts.unreachable])
    if not facts.consent_allows:
        if facts.consent_status is ConsentStatus.OPTED_OUT:
            return Skip(SkipReason.OPTED_OUT)
        return Skip(SkipReason.NO_CONSENT)
    if not facts.has_sender:
        return Skip(SkipReason.NO_SENDER)
    return Send()
