"""Classify the body of an inbound SMS into a consent intent and a language.

Pure functions, standard library only.

Normalisation (:func:`normalize`): Unicode NFKC (full-width letters become ASCII), casefold,
strip accents (NFKD, drop combining marks), turn every character that is not a letter or a
digit (punctuation, symbols, emoji, zero-width and control characters) into a space, collapse
whitespace, trim.  ``"  Stop!!! 🛑 "`` -> ``"stop"``, ``"NO MÁS"`` -> ``"no mas"``.

Classification (:func:`classify`), first matching rule wins:

1. Empty after normalisation -> ``NONE`` (language ``"en"``).
2. The whole message is a keyword from :data:`OPT_OUT_KEYWORDS`, :data:`OPT_IN_KEYWORDS` or
   :data:`HELP_KEYWORDS`, optionally with one politeness word before and/or after it
   ("stop please", "please stop", "alto por favor") -> that intent, in the keyword's language,
   with the upper-case canonical keyword ("STOP", "NO MAS", "STOPALL" for "stop all").
3. A clear plain-language revocation ("stop texting me", "remove me", "no me manden mas") ->
   ``OPT_OUT`` with keyword ``"PHRASE"`` (the FCC accepts revocation by "any reasonable
   means").  A revocation directly preceded by a negation ("don't stop texting me", Spanish
   "no dejen de escribirme") is not one; it only counts towards rule 4.
4. An opt-out word used inside a sentence ("I'll stop by at 3", "cancel my appointment"),
   "wrong number", "too many texts", or a negated revocation -> ``POSSIBLE_OPT_OUT``: for
   staff review, callers must not change consent state.  "end", "alto" and "pare" are too
   common in ordinary sentences to count here.
5. Anything else -> ``NONE``.  Sentences that merely contain help/yes/start are ``NONE``.

For phrase matches the language is the phrase's language; for ``NONE`` and
``POSSIBLE_OPT_OUT`` it is ``"es"`` when the text contains a common Spanish marker word,
otherwise ``"en"``.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "HELP_KEYWORDS",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "Classification",
    "Intent",
    "classify",
    "normalize",
]


class Intent(enum.StrEnum):
    OPT_OUT = "opt_out"  #: a bare opt-out keyword or a clear plain-language revocation
    OPT_IN = "opt_in"  #: START / UNSTOP / YES / SI / ALTA
    HELP = "help"  #: HELP / INFO / AYUDA
    POSSIBLE_OPT_OUT = "possible_opt_out"  #: mentions stopping but is ambiguous -> staff review
    NONE = "none"


@dataclass(frozen=True)
class Classification:
    intent: Intent
    language: str  # "en" or "es"
    keyword: str | None  # canonical upper-case keyword, "PHRASE" for phrases, else None
    normalized: str  # the normalised text that was matched


#: Normalised keyword -> language.
OPT_OUT_KEYWORDS: dict[str, str] = {
    "stop": "en",
    "stopall": "en",
    "stop all": "en",
    "unsubscribe": "en",
    "cancel": "en",
    "end": "en",
    "quit": "en",
    "revoke": "en",
    "optout": "en",
    "opt out": "en",
    "parar": "es",
    "pare": "es",
    "alto": "es",
    "cancelar": "es",
    "baja": "es",
    "no mas": "es",
    "darme de baja": "es",
    "dar de baja": "es",
}
OPT_IN_KEYWORDS: dict[str, str] = {
    "start": "en",
    "unstop": "en",
    "yes": "en",
    "si": "es",
    "alta": "es",
}
HELP_KEYWORDS: dict[str, str] = {"help": "en", "info": "en", "ayuda": "es"}

_CANONICAL = {"stop all": "STOPALL"}
_KEYWORD_TABLES = (
    (Intent.OPT_OUT, OPT_OUT_KEYWORDS),
    (Intent.OPT_IN, OPT_IN_KEYWORDS),
    (Intent.HELP, HELP_KEYWORDS),
)
#: Words that may precede or follow a bare keyword without changing its meaning.
_POLITENESS = ("please", "pls", "plz", "thanks", "thank you", "now", "por favor", "gracias", "ya")

_TEXTS = r"(?:text messages|texts|txts|messages|msgs|sms|reminders|notifications)"
_MENSAJES = r"(?:mensajes|textos|msjs|sms|recordatorios)"
_DONT = r"(?:don t|dont|do not)"


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{pattern})\b")


#: (pattern, language, negatable).  A negatable pattern is cancelled by a negation right
#: before it; patterns that themselves start with a negation are not negatable.
_PHRASE_SOURCES: tuple[tuple[str, str, bool], ...] = (
    (r"stop (?:texting|txting|messaging|sending|contacting|receiving|getting)", "en", True),
    (rf"stop (?:all |the |these |your |any )?{_TEXTS}", "en", True),
    (r"(?:remove|take) me off|remove me|unsubscribe me|opt me out", "en", True),
    (r"(?:delete|remove|erase) my (?:phone )?number", "en", True),
    (r"(?:want|wish|like) to (?:unsubscribe|opt out|optout)", "en", True),
    (r"leave me alone", "en", True),
    (rf"no more {_TEXTS}", "en", False),
    (rf"(?:{_DONT}|never) (?:text|txt|message|msg|contact|sms) (?:me|us)", "en", False),
    (rf"{_DONT} want (?:these |those |your |the |any )?(?:more )?{_TEXTS}", "en", False),
    (rf"(?:{_DONT}|never) send (?:me|us) (?:any )?(?:more )?{_TEXTS}", "en", False),
    (r"no me (?:envien|envie|envies|manden|mande|mandes|escriban|escriba|contacten)", "es", False),
    (rf"no mas {_MENSAJES}", "es", False),
    (rf"no quiero (?:recibir )?(?:mas )?(?:sus |estos |los )?(?:mas )?{_MENSAJES}", "es", False),
    (r"(?:dejen|deje|deja|dejar) de (?:enviar|mandar|escribir|contactar)(?:me)?", "es", True),
    (r"(?:darme|dar|denme|me doy) de baja", "es", True),
    (r"(?:sacame|saquenme|sacarme|quitame|quitenme|borrame|borrenme) de", "es", True),
    (r"(?:borren|borrar|eliminen|eliminar|quiten) mi (?:numero|telefono|celular)", "es", True),
)
_PHRASES = tuple((_rx(source), lang, negatable) for source, lang, negatable in _PHRASE_SOURCES)
_NEGATION = {
    "en": re.compile(r"\b(?:don t|dont|do not|never)(?: ever| please)? $"),
    "es": re.compile(r"\bno (?:quiero |quisiera )?$"),
}
_POSSIBLE = _rx(
    r"stop|stopall|unsubscribe|cancel|quit|revoke|optout|opt out|parar|cancelar|baja|no mas"
    r"|wrong number|numero equivocado|demasiados mensajes"
    r"|too many (?:texts|text messages|messages|msgs|txts)"
)
_SPANISH_MARKERS = _rx(
    r"por|favor|mensajes?|no me|quiero|numero|gracias|hola|cita|dejen|baja|parar|cancelar"
    r"|no mas|equivocado|ayuda"
)


def normalize(body: str) -> str:
    """Return *body* casefolded, without accents, with only letters/digits and single spaces."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", body).casefold())
    chars: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] == "M":  # combining mark: accent, variation selector, ...
            continue
        chars.append(ch if category[0] in "LN" else " ")
    return " ".join("".join(chars).split())


def _guess_language(text: str) -> str:
    return "es" if _SPANISH_MARKERS.search(text) else "en"


def _keyword_candidates(text: str) -> Iterator[str]:
    """Yield *text* and *text* without one leading and/or one trailing politeness word."""
    heads = [text] + [text[len(p) + 1 :] for p in _POLITENESS if text.startswith(p + " ")]
    for head in heads:
        yield head
        yield from (head[: -len(p) - 1] for p in _POLITENESS if head.endswith(" " + p))


def _match_keyword(text: str) -> Classification | None:
    for candidate in _keyword_candidates(text):
        for intent, table in _KEYWORD_TABLES:
            if candidate in table:
                keyword = _CANONICAL.get(candidate, candidate.upper())
                return Classification(intent, table[candidate], keyword, text)
    return None


def _match_phrase(text: str) -> tuple[str | None, bool]:
    """Return (language of a revocation phrase or None, whether a negated one was seen)."""
    negated = False
    for pattern, language, negatable in _PHRASES:
        for match in pattern.finditer(text):
            if negatable and _NEGATION[language].search(text, 0, match.start()):
                negated = True
            else:
                return language, negated
    return None, negated


def classify(body: str) -> Classification:
    """Classify an inbound SMS body; see the module docstring for the rules."""
    text = normalize(body)
    if not text:
        return Classification(Intent.NONE, "en", None, text)
    keyword = _match_keyword(text)
    if keyword is not None:
        return keyword
    phrase_language, negated = _match_phrase(text)
    if phrase_language is not None:
        return Classification(Intent.OPT_OUT, phrase_language, "PHRASE", text)
    language = _guess_language(text)
    if negated or _POSSIBLE.search(text):
        return Classification(Intent.POSSIBLE_OPT_OUT, language, None, text)
    return Classification(Intent.NONE, language, None, text)
