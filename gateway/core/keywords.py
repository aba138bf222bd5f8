"""Classify the body of an inbound SMS into a consent intent, a scope and a language.

Pure functions, standard library only. Every rule is a row of :data:`RULES`, with the source it
comes from; a classification names the rule that decided it, and the inbound message, its consent
events and its review item record that rule, so the ledger shows *why* a text changed consent.

Normalisation (:func:`normalize`): Unicode NFKC (full-width letters become ASCII), format
characters (category Cf: zero-width space, joiners, soft hyphen, word joiner, BOM) deleted, so
``"ST\\u200bOP"`` is ``"stop"`` as the patient saw it; casefold; accents stripped (NFKD, combining
marks dropped); every other character that is not a letter or a digit (punctuation, symbols,
emoji, controls) becomes a space; whitespace collapsed; trimmed. ``"  Stop!!! 🛑 "`` -> ``"stop"``,
``"NO MÁS"`` -> ``"no mas"``.

Classification (:func:`classify`), first that applies wins:

1. Empty after normalisation -> ``NONE``.
2. **Keyword message**: the whole text is made of keywords of one intent and, around them, only
   words that do not change their meaning: courtesy ("please", "thanks", "por favor"), emphasis
   ("just", "now", repeats, stretched letters such as "stooop") and, for opt-outs, an object that
   is the texting itself ("texting me", "texts", "messages", "mensajes"). ``"STOP STOP STOP"``,
   ``"Stop it!"``, ``"I opt out"``, ``"quit texting me"``, ``"cancel texts"``, ``"Stop end"`` are
   opt-outs (the FCC's per-se words, 47 CFR 64.1200(a)(10)). An object that is promotions
   ("no more offers") narrows the opt-out to marketing. Anything else in the text (an
   appointment, a time, a place) redirects the word: not a keyword message.
3. **Plain-language revocation**, sentence by sentence: a ``PHRASE`` rule ("lose my number",
   "paren de mandarme mensajes") -> ``OPT_OUT``, unless the sentence is a question ("why did you
   stop sending reminders?"; a request such as "can you stop texting me?" is not a question) or
   the phrase is negated ("don't stop texting me"), which makes it a staff review item. A text of
   several sentences of which one is a keyword message ("Why do you keep texting? STOP") is an
   opt-out.
4. **Mention** (``POSSIBLE_OPT_OUT``: staff review, no consent change): an opt-out word inside a
   sentence ("I'll stop by at 3", "cancel my appointment"), "remove me from the waitlist",
   "wrong number", "too many texts", "not interested", a guarded phrase from rule 3.
5. Anything else -> ``NONE``. Sentences that merely contain help/yes/start are ``NONE``.

The language is the matched rule's; otherwise ``"es"`` when the text has a common Spanish word.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache

__all__ = [
    "HELP_KEYWORDS",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "RULES",
    "SOURCES",
    "Classification",
    "Intent",
    "Match",
    "Rule",
    "Scope",
    "classify",
    "normalize",
]


class Intent(enum.StrEnum):
    OPT_OUT = "opt_out"  #: a revocation: keyword message or unmistakable plain language
    OPT_IN = "opt_in"  #: START / UNSTOP / YES / SI / ALTA
    HELP = "help"  #: HELP / INFO / AYUDA
    POSSIBLE_OPT_OUT = "possible_opt_out"  #: mentions stopping but is ambiguous -> staff review
    NONE = "none"


class Scope(enum.StrEnum):
    """What an opt-out covers (``gateway.core.consent_rules`` turns it into categories)."""

    #: every category the texted sender carries (a STOP to a number stops that number)
    SENDER = "sender"
    #: every category of the practice (STOPALL)
    PRACTICE = "practice"
    #: marketing only ("no more promotions"): care messages go on
    MARKETING = "marketing"


class Match(enum.StrEnum):
    """How a rule's terms are matched."""

    #: the whole message, less courtesy, emphasis and (for opt-outs) object words
    KEYWORD = "keyword"
    #: a regular expression found in one sentence of the normalised text
    PHRASE = "phrase"
    #: a regular expression found anywhere: staff review only
    MENTION = "mention"


#: Where each rule comes from (the README's rule table shows these).
SOURCES: dict[str, str] = {
    "fcc": "FCC 24-24, 47 CFR 64.1200(a)(10): per-se revocation words (stop, quit, end, revoke, "
    "opt out, cancel, unsubscribe)",
    "fcc-reasonable": "FCC 24-24: revocation by any reasonable means (totality of the "
    "circumstances)",
    "twilio": "Twilio default keywords (Advanced Opt-Out; REVOKE and OPTOUT since 2025-05-14)",
    "twilio-stopall": "Twilio default opt-out keyword STOPALL",
    "aws": "AWS End User Messaging required opt-out keywords, US and Canada (REMOVE, ARRET, TD)",
    "ctia": "CTIA Messaging Principles and Best Practices: HELP, STOP and START must work",
    "spanish": "Spanish equivalents of the FCC per-se words (the FCC order: any reasonable means, "
    "in the language the patient uses)",
    "common": "Common variants and misspellings seen in opt-out handling (UNSUB, unsuscribe)",
    "review": "Mentions a revocation word without a clear request: staff review "
    "(the FCC's totality test; DESIGN rule: questions and complaints are not revocations)",
}


@dataclass(frozen=True)
class Rule:
    """One row of the rule table."""

    #: stable name, recorded with the inbound message and the consent event
    id: str
    intent: Intent
    match: Match
    language: str
    #: KEYWORD: normalised words (the first is the canonical keyword); PHRASE/MENTION: regexes
    terms: tuple[str, ...]
    #: a key of :data:`SOURCES`
    source: str
    scope: Scope = Scope.SENDER
    #: KEYWORD: "it", "that", "them" may follow ("stop it"); for "cancel it" the pronoun is
    #: the appointment, so only stop/quit take one
    takes_pronoun: bool = False
    #: PHRASE: a negation right before the match cancels it ("don't stop texting me")
    negatable: bool = False
    #: a text this rule decides (shown in the README; the tests check it)
    example: str = ""

    @property
    def keyword(self) -> str:
        """The canonical upper-case keyword ("STOP", "NO MAS"), or "PHRASE"."""
        return self.terms[0].upper() if self.match is Match.KEYWORD else "PHRASE"


@dataclass(frozen=True)
class Classification:
    intent: Intent
    language: str  # "en" or "es"
    keyword: str | None  # canonical upper-case keyword, "PHRASE" for phrases, else None
    normalized: str  # the normalised text that was matched
    #: the id of the rule (or guard) that decided it; None for NONE
    rule: str | None = None
    #: for OPT_OUT: what it revokes
    scope: Scope = Scope.SENDER


OUT, IN, HELP, MAYBE = Intent.OPT_OUT, Intent.OPT_IN, Intent.HELP, Intent.POSSIBLE_OPT_OUT
KW, PHRASE, MENTION = Match.KEYWORD, Match.PHRASE, Match.MENTION

# Word classes used by the phrase patterns (normalised text: no apostrophes, no accents).
_TEXTS = (
    r"(?:text messages|text msgs|texts|text|txts|txt|messages|message|msgs|msg|sms|reminders"
    r"|notifications|alerts|calls)"
)
_PROMOS = (
    r"(?:promotions|promotion|promos|promo|offers|specials|deals|ads|advertisements|advertising"
    r"|marketing(?: texts| messages)?|newsletters|newsletter|coupons|sales|discounts)"
)
_MENSAJES = r"(?:mensajes|mensaje|textos|texto|msjs|sms|recordatorios|notificaciones)"
_PROMOCIONES = r"(?:promociones|promocion|ofertas|oferta|publicidad|anuncios|descuentos)"
_DONT = r"(?:don t|dont|do not|pls don t|please don t|please do not)"
_LISTY = (
    r"(?:(?:the|your|this|that|ur|these|those|all|all your|any|every) )?"
    r"(?:(?:text|texting|sms|message|messaging|mailing|contact|call|calling|marketing|distribution"
    r"|subscriber|subscription|notification|reminder|phone|email) )?"
    r"(?:list|lists|texts|messages|system|database|records|program|notifications|reminders|thing)"
)
_TAIL = r"(?: (?:please|pls|plz|now|thanks|thank you|asap|immediately|right now|already"
_TAIL += r"|permanently|for good|forever|again|too))*"
#: "X me" at the end of a sentence, or followed by a list of ours: not "from the waitlist"
_OFF_OUR_LIST = (
    rf"(?: (?:off|from|of|out of)(?: {_LISTY}| this| that| it| them| these| everything| all)?)?"
    rf"{_TAIL}$"
)

RULES: tuple[Rule, ...] = (
    # --- opt-out keywords: the whole message -----------------------------------------------
    Rule("keyword.stop", OUT, KW, "en", ("stop",), "fcc", takes_pronoun=True),
    Rule("keyword.stopall", OUT, KW, "en", ("stopall", "stop all"), "twilio-stopall",
         Scope.PRACTICE),
    Rule("keyword.unsubscribe", OUT, KW, "en", ("unsubscribe",), "fcc"),
    Rule("keyword.cancel", OUT, KW, "en", ("cancel",), "fcc"),
    Rule("keyword.end", OUT, KW, "en", ("end",), "fcc"),
    Rule("keyword.quit", OUT, KW, "en", ("quit",), "fcc", takes_pronoun=True),
    Rule("keyword.revoke", OUT, KW, "en", ("revoke",), "fcc"),
    Rule("keyword.optout", OUT, KW, "en", ("optout",), "twilio"),
    Rule("keyword.opt_out", OUT, KW, "en", ("opt out",), "fcc"),
    Rule("keyword.remove", OUT, KW, "en", ("remove",), "aws"),
    Rule("keyword.arret", OUT, KW, "en", ("arret", "arrete", "arreter"), "aws"),
    Rule("keyword.td", OUT, KW, "en", ("td",), "aws"),
    Rule("keyword.unsub", OUT, KW, "en",
         ("unsub", "unsubs", "unsuscribe", "unsubcribe", "unsubscibe", "unsubsribe",
          "unsubscribed"), "common"),
    Rule("keyword.stop_typo", OUT, KW, "en", ("stopp", "sotp", "stpo", "stp", "stopt"), "common",
         takes_pronoun=True),
    Rule("keyword.parar", OUT, KW, "es", ("parar",), "spanish"),
    Rule("keyword.pare", OUT, KW, "es", ("pare", "paren"), "spanish", takes_pronoun=True),
    Rule("keyword.para", OUT, KW, "es", ("para",), "spanish"),
    Rule("keyword.alto", OUT, KW, "es", ("alto",), "spanish"),
    Rule("keyword.detener", OUT, KW, "es", ("detener", "detengan", "detente", "detenga"),
         "spanish"),
    Rule("keyword.cancelar", OUT, KW, "es", ("cancelar",), "spanish"),
    Rule("keyword.baja", OUT, KW, "es",
         ("baja", "darme de baja", "dar de baja", "denme de baja", "de baja"), "spanish"),
    Rule("keyword.no_mas", OUT, KW, "es", ("no mas", "ya no mas", "nada mas"), "spanish"),
    Rule("keyword.desuscribir", OUT, KW, "es",
         ("desuscribir", "desuscribirme", "desuscribirse", "desinscribir", "desinscribirme",
          "anular suscripcion", "cancelar suscripcion"), "spanish"),
    Rule("keyword.fin", OUT, KW, "es", ("fin", "terminar", "finalizar"), "spanish"),
    Rule("keyword.salir", OUT, KW, "es", ("salir",), "spanish"),
    Rule("keyword.revocar", OUT, KW, "es", ("revocar",), "spanish"),
    Rule("keyword.basta", OUT, KW, "es", ("basta", "ya basta"), "spanish"),
    # --- opt-in and help keywords: the whole message, courtesy words only -----------------
    Rule("keyword.start", IN, KW, "en", ("start",), "twilio"),
    Rule("keyword.unstop", IN, KW, "en", ("unstop",), "twilio"),
    Rule("keyword.yes", IN, KW, "en", ("yes",), "twilio"),
    Rule("keyword.si", IN, KW, "es", ("si",), "spanish"),
    Rule("keyword.alta", IN, KW, "es", ("alta",), "spanish"),
    Rule("keyword.help", HELP, KW, "en", ("help",), "ctia"),
    Rule("keyword.info", HELP, KW, "en", ("info",), "twilio"),
    Rule("keyword.ayuda", HELP, KW, "es", ("ayuda",), "spanish"),
    # --- plain language: marketing only (checked first in each sentence) ------------------
    Rule("phrase.en.no_more_promotions", OUT, PHRASE, "en",
         (rf"(?:no more|no|enough) {_PROMOS}",
          rf"(?:{_DONT}|never) (?:send|text|email) (?:me|us) (?:any |anymore |any more |more "
          rf"|your |these |those |the )*{_PROMOS}",
          rf"{_DONT} want (?:to (?:get|receive) )?(?:any |more |your |these |those |the )*"
          rf"{_PROMOS}",
          rf"(?:remove|take) me (?:off|from|out of) (?:the |your |this |all )?(?:{_PROMOS}|promo)"
          rf"(?: text| texting| sms| mailing)? list",
          rf"(?:stop|quit|end|cancel|unsubscribe me from|unsubscribe from|opt me out of"
          rf"|opt out of|remove me from) (?:sending (?:me )?|texting me |all |the |your "
          rf"|these |those |any )*{_PROMOS}"),
         "fcc-reasonable", Scope.MARKETING),
    Rule("phrase.es.no_more_promotions", OUT, PHRASE, "es",
         (rf"no (?:mas|quiero|deseo|me (?:envien|manden|mande|envie|escriban)(?: mas)?)"
          rf"(?: recibir)?(?: mas)?(?: sus| las| los| estas| esas)? {_PROMOCIONES}",
          rf"(?:dejen|deje|paren|pare|dejar) (?:de|d) (?:enviar|mandar|escribir)(?:me|nos)?"
          rf"(?: mas)?(?: sus| las| los| estas| esas)? {_PROMOCIONES}"),
         "fcc-reasonable", Scope.MARKETING),
    # --- plain language: every category the sender carries --------------------------------
    Rule("phrase.en.stop_contacting", OUT, PHRASE, "en",
         (r"(?:stop|quit|cease|end) (?:texting|txting|messaging|sending|contacting|calling"
          r"|bothering|spamming|harassing|emailing)",
          rf"(?:stop|quit|end|cancel) (?:all |the |these |those |your |any |my )?{_TEXTS}"),
         "fcc-reasonable", negatable=True),
    Rule("phrase.en.remove_me", OUT, PHRASE, "en",
         (rf"(?:remove|take|delete|erase|drop|scratch|get) me{_OFF_OUR_LIST}",
          rf"(?:unsubscribe|unsub|opt|sign) me(?: out)?{_OFF_OUR_LIST}",
          rf"(?:delete|remove|erase|lose|forget|drop|trash) (?:my|this|the) (?:phone |cell "
          rf"|mobile )?(?:number|info|information|contact|details|contact info){_OFF_OUR_LIST}"),
         "fcc-reasonable", negatable=True),
    Rule("phrase.en.want_out", OUT, PHRASE, "en",
         (rf"(?:want|wish|like|need|trying|try|going|wanna) to (?:unsubscribe|unsub|opt out"
          rf"|optout|be removed|be taken off){_OFF_OUR_LIST}",
          rf"(?:want|wish|like|need|trying|try|going|wanna) to stop (?:getting|receiving) "
          rf"(?:these |your |the |any |those )?{_TEXTS}",
          r"(?:revoke|withdraw|cancel|take back) (?:my |all )?(?:consent|permission)",
          rf"no longer (?:want|wish|need) (?:to (?:get|receive) )?"
          rf"(?:these |your |the |any |those )?{_TEXTS}",
          r"leave me alone"),
         "fcc-reasonable", negatable=True),
    Rule("phrase.en.no_more_texts", OUT, PHRASE, "en",
         (rf"no more {_TEXTS}",
          rf"(?:{_DONT}|never|stop) (?:ever )?(?:text|txt|message|msg|contact|sms|call|bother"
          rf"|email) (?:me|us)",
          rf"{_DONT} (?:want|need) (?:to (?:get|receive) )?(?:these |those |your |the |any )?"
          rf"(?:more )?{_TEXTS}",
          rf"(?:{_DONT}|never) send (?:me|us) (?:any |anymore |any more |more )*"
          rf"(?:{_TEXTS}|anything)"),
         "fcc-reasonable"),
    Rule("phrase.es.stop_sending", OUT, PHRASE, "es",
         (r"(?:dejen|deje|deja|dejar|paren|pare|para|parar|detengan|dejes|terminen) (?:de|d) "
          r"(?:enviar|mandar|escribir|contactar|textear|llamar|molestar)(?:me|nos)?",
          r"(?:darme|dar|denme|dame|me doy|quiero darme) de baja",
          r"(?:quiero |deseo )?(?:desuscribirme|desinscribirme|cancelar (?:mi )?suscripcion)",
          r"(?:revoco|retiro|cancelo) (?:mi )?(?:consentimiento|permiso|autorizacion)",
          r"(?:dejenme|dejame|dejeme) (?:en paz|tranquil[oa])"),
         "fcc-reasonable", negatable=True),
    Rule("phrase.es.remove_me", OUT, PHRASE, "es",
         (r"(?:sacame|saquenme|sacarme|quitame|quitenme|borrame|borrenme|eliminenme|eliminame"
          r"|remuevanme)(?: de (?:la |su |sus |esta |esa |las )?(?:lista|listas|mensajes"
          r"|base de datos|sistema))?(?: por favor| ya| gracias)*$",
          r"(?:borren|borrar|eliminen|eliminar|quiten|quitar|pierdan|olviden) mi (?:numero"
          r"|telefono|celular|informacion)"),
         "fcc-reasonable", negatable=True),
    Rule("phrase.es.no_more_texts", OUT, PHRASE, "es",
         (r"no me (?:envien|envie|envies|manden|mande|mandes|escriban|escriba|contacten|llamen"
          r"|molesten|textee|texteen)",
          rf"no mas {_MENSAJES}",
          rf"(?:no|ya no) (?:quiero|deseo) (?:recibir |que me (?:envien|manden|escriban) )?"
          rf"(?:mas )?(?:sus |estos |los |esos )?(?:mas )?{_MENSAJES}"),
         "fcc-reasonable"),
    # --- mentions: staff review, never a consent change -----------------------------------
    Rule("mention.optout_word", MAYBE, MENTION, "en",
         (r"stop|stopall|unsubscribe|unsub|cancel|quit|revoke|optout|opt out|parar|cancelar"
          r"|baja|no mas|detener|desuscribir\w*",), "review"),
    Rule("mention.remove_me", MAYBE, MENTION, "en",
         (r"(?:remove|take|delete|erase) me|(?:remove|delete|erase) my (?:phone )?number"
          r"|sacame|saquenme|borrame|borrenme",), "review"),
    Rule("mention.wrong_number", MAYBE, MENTION, "en",
         (r"wrong (?:number|person|phone)|not (?:my|the right) number|numero equivocado"
          r"|persona equivocada|who is this",), "review"),
    Rule("mention.complaint", MAYBE, MENTION, "en",
         (rf"too many {_TEXTS}|demasiados {_MENSAJES}|not interested|no (?:estoy|estamos) "
          r"interesad[oa]s?|spam|harass\w*|keep (?:texting|messaging|sending)|text(?:ing)? too much"
          r"|(?:dejo|dejar) de recibir|no (?:pares|paren|dejen de)",), "review"),
)  # fmt: skip

_EXAMPLES = {
    "phrase.en.no_more_promotions": "Don't send me any more promotions",
    "phrase.es.no_more_promotions": "No me manden más ofertas",
    "phrase.en.stop_contacting": "Can you stop texting me?",
    "phrase.en.remove_me": "lose my number",
    "phrase.en.want_out": "I no longer wish to receive these messages",
    "phrase.en.no_more_texts": "Do not text me anymore",
    "phrase.es.stop_sending": "Dejen de escribirme",
    "phrase.es.remove_me": "borren mi número",
    "phrase.es.no_more_texts": "No me envíen más mensajes",
    "mention.optout_word": "I need to cancel my appointment",
    "mention.remove_me": "Can you remove me from the waitlist?",
    "mention.wrong_number": "wrong number",
    "mention.complaint": "too many texts!!",
}
RULES = tuple(
    replace(rule, example=_EXAMPLES.get(rule.id, rule.terms[0] if rule.match is KW else ""))
    for rule in RULES
)

#: Guards: why a matched phrase became a review item instead of an opt-out.
GUARD_QUESTION = "guard.question"
GUARD_NEGATION = "guard.negation"
GUARD_MIXED = "guard.mixed_keywords"

# Words that may surround a keyword without changing its meaning (rule 2 of the docstring).
_COURTESY = (
    "please", "pls", "plz", "pleas", "plase", "plse", "thanks", "thank you", "thankyou", "thx",
    "ty", "now", "right now", "ok", "okay", "k", "hi", "hey", "hello", "por favor", "porfa",
    "porfavor", "favor", "gracias", "ya", "hola", "ahora",
)  # fmt: skip
_EMPHASIS = (  # opt-outs only
    "i", "just", "already", "immediately", "asap", "all", "any", "more", "anymore", "any more",
    "again", "ever", "you", "u", "the", "your", "ur", "my", "these", "those", "from", "of",
    "list", "this list", "the list", "your list", "forever", "permanently", "for good",
    "todo", "todos", "todas", "los", "las", "el", "de", "sus", "mas", "me", "nos",
)  # fmt: skip
_PRONOUNS = ("it", "that", "this", "them", "esto", "eso")
_CARE_OBJECTS = (
    "texting", "texting me", "text", "texts", "text messages", "txt", "txts", "txting",
    "messages", "message", "msg", "msgs", "messaging", "sms", "calls", "notifications",
    "alerts", "reminders", "reminder", "subscription", "mensajes", "mensaje", "textos", "texto",
    "recordatorios", "notificaciones", "llamadas",
)  # fmt: skip
_VERBS = (  # opt-outs only: "stop sending me ...", "paren de mandarme ..."
    "sending", "sending me", "contacting", "contacting me", "calling", "calling me", "enviar",
    "enviarme", "mandar", "mandarme", "escribir", "escribirme",
)  # fmt: skip
_PROMO_OBJECTS = (
    "promotions", "promotion", "promos", "promo", "offers", "offer", "specials", "deals", "ads",
    "advertisements", "advertising", "marketing", "newsletters", "newsletter", "coupons",
    "sales", "discounts", "promociones", "promocion", "ofertas", "oferta", "publicidad",
    "anuncios", "descuentos",
)  # fmt: skip

_NEGATION = {
    "en": re.compile(r"\b(?:don t|dont|do not|never|not|won t|wont|didn t|didnt)"
                     r"(?: ever| please| you| u)? $"),
    "es": re.compile(r"\bno (?:quiero |quisiera |deseo )?$"),
}  # fmt: skip
#: a sentence that asks about something rather than for something
_QUESTION_START = re.compile(
    r"^(?:why|how come|how do|how can|how does|how did|what|when|where|who|which|did|does|is"
    r"|are|was|were|have you|has|had|do you|do i|do we|por que|porque|cuando|como|que|quien"
    r"|donde|cual|acaso)\b"
)
#: "can you stop texting me?" asks for the stop: a request, not a question
_REQUEST_START = re.compile(
    r"^(?:(?:please|pls|hi|hey|hello|ok) )*(?:can|could|would|will|can t|cant)"
    r" (?:you|u|y all|yall|someone|somebody|ya)\b|^(?:pueden|puede|podrian|podria|podrias)\b"
)
_SPANISH_MARKERS = re.compile(
    r"\b(?:por|favor|mensajes?|no me|quiero|numero|gracias|hola|cita|dejen|baja|parar|cancelar"
    r"|no mas|equivocado|ayuda|paren|para|mandar\w*|enviar\w*|promociones|ofertas)\b"
)
_STRETCH = re.compile(r"([a-z])\1{2,}")
_SENTENCE_BREAK = re.compile(r"([.!?;\n\r¿¡]+)")


def normalize(body: str) -> str:
    """Return *body* as the patient saw it, for matching: casefolded, without accents or format
    characters, with only letters/digits and single spaces (see the module docstring)."""
    if body.isascii():  # most texts: the same result, without a Python loop per character
        return " ".join(_NOT_ASCII_WORD.sub(" ", body.lower()).split())
    text = unicodedata.normalize("NFKD", _visible(body).casefold())
    chars: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] == "M":  # combining mark: accent, variation selector, ...
            continue
        chars.append(ch if category[0] in "LN" else " ")
    return " ".join("".join(chars).split())


def _visible(body: str) -> str:
    """NFKC with the invisible format characters (Cf) deleted, not turned into spaces."""
    if body.isascii():
        return body
    return unicodedata.normalize("NFKC", body).translate(_FORMAT_CHARACTERS)


#: every format character (Cf) -> deleted; they live below U+20000 and in the tags block
_FORMAT_CHARACTERS = {
    code: None
    for code in (*range(0x20000), *range(0xE0000, 0xE0080))
    if unicodedata.category(chr(code)) == "Cf"
}
_NOT_ASCII_WORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class _Word:
    """A word (or words) of the keyword vocabulary: a keyword of a rule, or a filler."""

    rule: Rule | None = None
    courtesy: bool = False
    emphasis: bool = False
    pronoun: bool = False
    care: bool = False
    promo: bool = False


@cache
def _vocabulary() -> tuple[dict[tuple[str, ...], _Word], int]:
    words: dict[tuple[str, ...], _Word] = {}
    for phrases, word in (
        (_COURTESY, _Word(courtesy=True)),
        (_EMPHASIS, _Word(emphasis=True)),
        (_VERBS, _Word(emphasis=True)),
        (_PRONOUNS, _Word(pronoun=True)),
        (_CARE_OBJECTS, _Word(care=True)),
        (_PROMO_OBJECTS, _Word(promo=True)),
    ):
        for phrase in phrases:
            words.setdefault(tuple(phrase.split()), word)
    for rule in RULES:
        if rule.match is Match.KEYWORD:
            for term in rule.terms:
                words[tuple(term.split())] = _Word(rule=rule)  # keywords win over fillers
    return words, max(len(key) for key in words)


def _keyword_message(text: str) -> Classification | None:
    """Rule 2: the whole text is keywords of one intent and words that leave their meaning."""
    tokens = _STRETCH.sub(r"\1", text).split()
    vocabulary, longest = _vocabulary()
    found: list[_Word] = []
    position = 0
    while position < len(tokens):
        for size in range(min(longest, len(tokens) - position), 0, -1):
            word = vocabulary.get(tuple(tokens[position : position + size]))
            if word is not None:
                found.append(word)
                position += size
                break
        else:
            return None  # a word that is neither a keyword nor a filler: redirected
    rules = [w.rule for w in found if w.rule is not None]
    if not rules:
        return None
    first = rules[0]
    if any(rule.intent is not first.intent for rule in rules):
        return Classification(MAYBE, first.language, None, text, GUARD_MIXED)
    # "marketing texts", "promo messages": a care word right after a promotion word is part of it
    found = [
        _Word(promo=True) if w.care and index and found[index - 1].promo else w
        for index, w in enumerate(found)
    ]
    fillers = [w for w in found if w.rule is None]
    if first.intent is not OUT:
        if not all(w.courtesy for w in fillers):
            return None  # "help me with my appointment", "yes I will be there"
        return Classification(first.intent, first.language, first.keyword, text, first.id)
    if any(w.pronoun for w in fillers) and not all(r.takes_pronoun for r in rules):
        return None  # "cancel it": the pronoun is the appointment
    scope = first.scope
    if any(r.scope is Scope.PRACTICE for r in rules):
        scope = Scope.PRACTICE
    elif any(w.promo for w in fillers) and not any(w.care for w in fillers):
        scope = Scope.MARKETING
    return Classification(OUT, first.language, first.keyword, text, first.id, scope)


@cache
def _compiled(rule: Rule) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(rf"\b(?:{term})\b" if not term.endswith("$") else rf"\b(?:{term})")
                 for term in rule.terms)  # fmt: skip


@cache
def _rules(match: Match) -> tuple[Rule, ...]:
    return tuple(rule for rule in RULES if rule.match is match)


@cache
def _any_phrase() -> re.Pattern[str]:
    """Every phrase pattern in one: a sentence none of them matches needs no closer look."""
    return re.compile("|".join(p.pattern for r in _rules(PHRASE) for p in _compiled(r)))


def _sentences(body: str) -> Iterator[tuple[str, bool]]:
    """Yield (normalised sentence, is a question) for each sentence of *body*."""
    pieces = _SENTENCE_BREAK.split(_visible(body))
    for index in range(0, len(pieces), 2):
        text = _STRETCH.sub(r"\1", normalize(pieces[index]))
        if not text:
            continue
        # Asking *about* stopping starts with a question word; a trailing "?" alone does not
        # make "do not text me anymore?" a question, and "can you stop texting me?" is a request.
        asked = bool(_QUESTION_START.match(text)) and not _REQUEST_START.match(text)
        yield text, asked


def _phrase(text: str, question: bool) -> tuple[Classification | None, str | None]:
    """Rule 3 on one sentence: (an opt-out, or None; the guard that held a phrase back)."""
    guard: str | None = None
    if not _any_phrase().search(text):
        return None, guard
    remaining = text
    best: Classification | None = None
    for rule in _rules(PHRASE):
        for pattern in _compiled(rule):
            for found in pattern.finditer(remaining):
                if rule.negatable and _NEGATION[rule.language].search(remaining, 0, found.start()):
                    guard = guard or GUARD_NEGATION
                    continue
                if question:
                    guard = guard or GUARD_QUESTION
                    continue
                hit = Classification(OUT, rule.language, "PHRASE", text, rule.id, rule.scope)
                if rule.scope is not Scope.MARKETING:
                    return hit, guard
                best = best or hit
                # what a marketing phrase said is spoken for; the rest may still revoke all
                remaining = remaining[: found.start()] + " " * len(found.group()) + remaining[
                    found.end() :
                ]  # fmt: skip
    return best, guard


def classify(body: str) -> Classification:
    """Classify an inbound SMS body; see the module docstring for the rules."""
    text = normalize(body)
    if not text:
        return Classification(Intent.NONE, "en", None, text)
    whole = _keyword_message(text)
    if whole is not None:
        return whole
    opt_out: Classification | None = None
    guard: str | None = None
    for sentence, question in _sentences(body):
        hit = _keyword_message(sentence)
        if hit is not None and hit.intent is OUT:
            hit_guard = None
        else:
            hit, hit_guard = _phrase(sentence, question)
        guard = guard or hit_guard
        if hit is not None and (opt_out is None or opt_out.scope is Scope.MARKETING):
            opt_out = hit
    if opt_out is not None:
        return Classification(OUT, opt_out.language, opt_out.keyword, text, opt_out.rule,
                              opt_out.scope)  # fmt: skip
    language = _guess_language(text)
    if guard is not None:
        return Classification(MAYBE, language, None, text, guard)
    for rule in _rules(MENTION):
        if any(pattern.search(text) for pattern in _compiled(rule)):
            return Classification(MAYBE, language, None, text, rule.id)
    return Classification(Intent.NONE, language, None, text)


def _guess_language(text: str) -> str:
    return "es" if _SPANISH_MARKERS.search(text) else "en"


def rule(rule_id: str) -> Rule | None:
    """The rule with that id (None for a guard or an unknown id)."""
    return next((r for r in RULES if r.id == rule_id), None)


def _keywords_of(intent: Intent) -> dict[str, str]:
    return {
        term: rule.language
        for rule in RULES
        if rule.match is Match.KEYWORD and rule.intent is intent
        for term in rule.terms
    }


#: Normalised keyword -> language (derived from :data:`RULES`).
OPT_OUT_KEYWORDS: dict[str, str] = _keywords_of(Intent.OPT_OUT)
OPT_IN_KEYWORDS: dict[str, str] = _keywords_of(Intent.OPT_IN)
HELP_KEYWORDS: dict[str, str] = _keywords_of(Intent.HELP)
