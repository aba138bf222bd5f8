"""Twilio error codes that say something about the number, and what the gateway does about them.

Pure. The same reactions apply whether the code comes back from the send request or later in a
status callback.
"""

from __future__ import annotations

import enum

from gateway.core.domain import Unreachable


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


#: what a Twilio error code means, in words for the front desk (Twilio's error dictionary)
MEANINGS: dict[int, str] = {
    20003: "Twilio refused the gateway's credentials",
    20404: "Twilio does not know the account, sender or message",
    20429: "too many requests: Twilio asked the gateway to slow down",
    20500: "an error inside Twilio",
    21211: "the number is not a valid phone number",
    21408: "the account may not text that country or region",
    21606: "the practice's number cannot send texts",
    21608: "a trial account may only text numbers verified with Twilio",
    21610: "the patient opted out at the carrier (texted STOP to the practice's number)",
    21611: "the practice's number has too many texts queued at Twilio",
    21612: "the number cannot be reached from the practice's number",
    21614: "the number is not a mobile number: it cannot receive texts",
    21617: "the text is longer than Twilio allows (1,600 characters)",
    30003: "the phone was unreachable (switched off or out of coverage)",
    30004: "the text was blocked (by the patient or their carrier)",
    30005: "the number is unknown or no longer in service",
    30006: "a landline, or a carrier that cannot take texts",
    30007: "the carrier filtered the text as spam",
    30008: "an unknown error at the carrier",
    30032: "the practice's toll-free number is not verified",
    30034: "the practice's number is not registered for A2P 10DLC",
}


def meaning(code: int | None) -> str | None:
    """A Twilio error code in words, or None when the table does not know it."""
    return MEANINGS.get(code) if code is not None else None
