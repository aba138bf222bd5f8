"""Twilio error codes that say something about the number, and what the gateway does about them.

Pure. The same reactions apply whether the code comes back from the send request or later in a
status callback.
"""

from __future__ import annotations

import enum

from gateway.domain import Unreachable


class Reaction(enum.StrEnum):
    #: the carrier holds an opt-out the gateway missed: record a revocation
    OPT_OUT = "opt_out"
    #: the number cannot receive SMS: mark the contact, later messages skip it
    MARK_UNREACHABLE = "mark_unreachable"


#: code -> (reaction, why the number is unreachable)
REACTIONS: dict[int, tuple[Reaction, Unreachable | None]] = {
    21610: (Reaction.OPT_OUT, None),  # Attempt to send to unsubscribed recipient
    21211: (Reaction.MARK_UNREACHABLE, Unreachable.INVALID_NUMBER),  # Invalid 'To' number
    30005: (Reaction.MARK_UNREACHABLE, Unreachable.INVALID_NUMBER),  # Unknown destination handset
    21614: (Reaction.MARK_UNREACHABLE, Unreachable.NOT_MOBILE),  # 'To' is not a mobile number
    30006: (Reaction.MARK_UNREACHABLE, Unreachable.NOT_MOBILE),  # Landline or unreachable carrier
}


def reaction_to(code: int | None) -> tuple[Reaction, Unreachable | None] | None:
    """What to do about a Twilio error code (None: nothing beyond recording it)."""
    return REACTIONS.get(code) if code is not None else None
