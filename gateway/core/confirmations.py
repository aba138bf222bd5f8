"""Appointment confirmation replies: which texts answer a reminder, and which reminder they answer.

Pure functions (standard library and ``gateway.core.keywords.normalize`` only).

A practice with ``confirmations = true`` ends its appointment reminders with "Reply C to confirm,
R to reschedule." The answer words are never consent keywords: ``CANCEL``, ``STOP``, ``YES`` and
``START`` keep their meaning (opt-out, opt-in) and are matched before anything here is asked, so
a patient cannot lose or grant consent by answering a reminder, nor confirm by revoking.

:func:`match`: the whole message, normalised like a keyword (NFKC, case-fold, accents, punctuation
and emoji stripped), is one answer word, optionally with one politeness word before or after it
("C", "confirmed!", "Confirmo, gracias", "r please").

:func:`choose`: of the reminders sent to the number whose appointment is still ahead, the one sent
most recently answers (the text the patient has just read; ties: the nearest appointment). A
reminder whose appointment has begun is never answered; none ahead, nothing answers and the text
goes the ordinary way.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.core.keywords import normalize

__all__ = ["WORDS", "Answer", "Candidate", "Response", "choose", "match"]


class Response(enum.StrEnum):
    CONFIRMED = "confirmed"
    RESCHEDULE_REQUESTED = "reschedule_requested"


#: normalised answer word -> (response, its language; None: the same in English and Spanish)
WORDS: dict[str, tuple[Response, str | None]] = {
    "c": (Response.CONFIRMED, None),
    "confirm": (Response.CONFIRMED, "en"),
    "confirmed": (Response.CONFIRMED, "en"),
    "confirmo": (Response.CONFIRMED, "es"),
    "confirmado": (Response.CONFIRMED, "es"),
    "r": (Response.RESCHEDULE_REQUESTED, None),
    "reschedule": (Response.RESCHEDULE_REQUESTED, "en"),
    "cambiar": (Response.RESCHEDULE_REQUESTED, "es"),
    "reprogramar": (Response.RESCHEDULE_REQUESTED, "es"),
}
#: words that may come before or after the answer without changing it
_POLITENESS = ("please", "pls", "thanks", "thank you", "ok", "por favor", "gracias")


@dataclass(frozen=True)
class Answer:
    response: Response
    #: "en" or "es" when the word tells; None for "C" and "R"
    language: str | None


@dataclass(frozen=True)
class Candidate:
    """A reminder that may be answered: its key, its appointment and when it was sent."""

    key: int
    appointment_at: datetime
    sent_at: datetime


def match(body: str) -> Answer | None:
    """The answer ``body`` gives, or None when it is not one."""
    text = normalize(body)
    for candidate in _without_politeness(text):
        if candidate in WORDS:
            response, language = WORDS[candidate]
            return Answer(response, language)
    return None


def _without_politeness(text: str) -> Iterable[str]:
    yield text
    for word in _POLITENESS:
        if text.startswith(word + " "):
            yield text[len(word) + 1 :]
        if text.endswith(" " + word):
            yield text[: -len(word) - 1]


def choose(candidates: Iterable[Candidate], now: datetime) -> Candidate | None:
    """The reminder an answer received at ``now`` is for (None: no appointment ahead)."""
    ahead = [c for c in candidates if c.appointment_at > now]
    if not ahead:
        return None
    return min(ahead, key=lambda c: (-c.sent_at.timestamp(), c.appointment_at, -c.key))
