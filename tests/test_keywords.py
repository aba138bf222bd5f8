"""Tests for gateway.keywords: SMS body -> consent intent / language."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import keywords
from gateway.core.keywords import Classification, Intent, classify, normalize

OUT, IN, HELP = Intent.OPT_OUT, Intent.OPT_IN, Intent.HELP
MAYBE, NONE = Intent.POSSIBLE_OPT_OUT, Intent.NONE

LONG_CHATTY = ("Hi, just confirming my appointment for next week. " * 40)[:1600]
LONG_REVOCATION = ("Hello there. " * 130)[:1585] + "stop texting me"

CASES = [
    # bare keywords: case, punctuation, emoji, full-width, zero-width padding
    ("STOP", OUT, "en", "STOP"),
    ("stop", OUT, "en", "STOP"),
    ("Stop", OUT, "en", "STOP"),
    ("sToP", OUT, "en", "STOP"),
    ("  Stop!!! 🛑 ", OUT, "en", "STOP"),
    ("STOP.", OUT, "en", "STOP"),
    ("STOP 🛑", OUT, "en", "STOP"),
    ("🛑STOP", OUT, "en", "STOP"),
    ("ＳＴＯＰ", OUT, "en", "STOP"),
    ("\u200b STOP \u200b\ufeff", OUT, "en", "STOP"),
    ("\u00a0\tstop\r\n", OUT, "en", "STOP"),
    ("STOPALL", OUT, "en", "STOPALL"),
    ("stop all", OUT, "en", "STOPALL"),
    ("Unsubscribe", OUT, "en", "UNSUBSCRIBE"),
    ("CANCEL", OUT, "en", "CANCEL"),
    ("End.", OUT, "en", "END"),
    ("quit", OUT, "en", "QUIT"),
    ("REVOKE", OUT, "en", "REVOKE"),
    ("optout", OUT, "en", "OPTOUT"),
    ("Opt-Out", OUT, "en", "OPT OUT"),
    ("opt out", OUT, "en", "OPT OUT"),
    # bare keyword with a politeness word
    ("stop please", OUT, "en", "STOP"),
    ("Please stop.", OUT, "en", "STOP"),
    ("STOP thanks", OUT, "en", "STOP"),
    ("stop now!", OUT, "en", "STOP"),
    ("stop, thank you", OUT, "en", "STOP"),
    ("yes please", IN, "en", "YES"),
    # Spanish keywords
    ("PARAR", OUT, "es", "PARAR"),
    ("pare", OUT, "es", "PARE"),
    ("¡ALTO!", OUT, "es", "ALTO"),
    ("alto por favor", OUT, "es", "ALTO"),
    ("Cancelar", OUT, "es", "CANCELAR"),
    ("baja", OUT, "es", "BAJA"),
    ("NO MÁS", OUT, "es", "NO MAS"),
    ("no mas", OUT, "es", "NO MAS"),
    ("Darme de baja", OUT, "es", "BAJA"),
    ("dar de baja", OUT, "es", "BAJA"),
    # opt-in and help
    ("START", IN, "en", "START"),
    ("unstop", IN, "en", "UNSTOP"),
    ("Yes!", IN, "en", "YES"),
    ("SÍ", IN, "es", "SI"),
    ("Sí", IN, "es", "SI"),
    ("si", IN, "es", "SI"),
    ("ALTA", IN, "es", "ALTA"),
    ("HELP", HELP, "en", "HELP"),
    ("help?", HELP, "en", "HELP"),
    ("INFO", HELP, "en", "INFO"),
    ("Ayuda", HELP, "es", "AYUDA"),
    ("ayuda por favor", HELP, "es", "AYUDA"),
    # English plain-language revocations
    ("please stop texting me", OUT, "en", "STOP"),
    ("Stop texting me!", OUT, "en", "STOP"),
    ("stop sending me messages", OUT, "en", "STOP"),
    ("stop messaging me", OUT, "en", "STOP"),
    ("stop all texts", OUT, "en", "STOPALL"),
    ("Remove me", OUT, "en", "REMOVE"),
    ("remove me from your list", OUT, "en", "REMOVE"),
    ("Take me off your list.", OUT, "en", "PHRASE"),
    ("unsubscribe me", OUT, "en", "UNSUBSCRIBE"),
    ("opt me out", OUT, "en", "PHRASE"),
    ("no more texts", OUT, "en", "PHRASE"),
    ("No more messages please", OUT, "en", "PHRASE"),
    ("don't text me", OUT, "en", "PHRASE"),
    ("Do not text me anymore", OUT, "en", "PHRASE"),
    ("do not contact me", OUT, "en", "PHRASE"),
    ("I don't want these texts", OUT, "en", "PHRASE"),
    ("leave me alone", OUT, "en", "PHRASE"),
    ("never text me again", OUT, "en", "PHRASE"),
    ("Don't send me any more texts", OUT, "en", "PHRASE"),
    ("delete my number", OUT, "en", "PHRASE"),
    ("No! Stop texting me", OUT, "en", "STOP"),
    (LONG_REVOCATION, OUT, "en", "STOP"),
    # Spanish plain-language revocations
    ("No me envíen más mensajes", OUT, "es", "PHRASE"),
    ("no me manden mas", OUT, "es", "PHRASE"),
    ("no más mensajes", OUT, "es", "NO MAS"),
    ("dejen de enviarme mensajes", OUT, "es", "PHRASE"),
    ("Dejen de escribirme!", OUT, "es", "PHRASE"),
    ("quiero darme de baja", OUT, "es", "PHRASE"),
    ("Sácame de la lista", OUT, "es", "PHRASE"),
    ("borren mi número", OUT, "es", "PHRASE"),
    ("ya no quiero mensajes", OUT, "es", "PHRASE"),
    # negations: never an opt-out, at most staff review
    ("don't stop texting me", MAYBE, "en", None),
    ("do not remove me", MAYBE, "en", None),
    ("please don't unsubscribe me", MAYBE, "en", None),
    ("no, don't stop", MAYBE, "en", None),
    ("no dejen de escribirme", MAYBE, "es", None),
    ("no quiero darme de baja", MAYBE, "es", None),
    # ambiguous mentions -> staff review
    ("I'll stop by at 3", MAYBE, "en", None),
    ("I need to cancel my appointment", MAYBE, "en", None),
    ("wrong number", MAYBE, "en", None),
    ("Número equivocado", MAYBE, "es", None),
    ("too many texts!!", MAYBE, "en", None),
    ("quiero cancelar mi cita", MAYBE, "es", None),
    # ordinary messages
    ("can you help me reschedule", NONE, "en", None),
    ("yes I will be there", NONE, "en", None),
    ("see you at the end of the week", NONE, "en", None),
    ("my son is very alto", NONE, "en", None),
    ("Hola, gracias por la cita", NONE, "es", None),
    ("what time does it start?", NONE, "en", None),
    ("", NONE, "en", None),
    ("   \t\n ", NONE, "en", None),
    ("🛑👍🙏", NONE, "en", None),
    ("\u200b\u200d", NONE, "en", None),
    (LONG_CHATTY, NONE, "en", None),
]


def test_long_bodies_are_max_concatenated_sms_length() -> None:
    assert len(LONG_CHATTY) == len(LONG_REVOCATION) == 1600


@pytest.mark.parametrize(("body", "intent", "language", "keyword"), CASES)
def test_classify_table(body: str, intent: Intent, language: str, keyword: str | None) -> None:
    result = classify(body)
    assert (result.intent, result.language, result.keyword) == (intent, language, keyword)
    assert result.normalized == normalize(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  Stop!!! 🛑 ", "stop"),
        ("Opt-Out", "opt out"),
        ("¡ALTO!", "alto"),
        ("NO MÁS", "no mas"),
        ("SÍ", "si"),
        ("ＳＴＯＰ", "stop"),
        ("st\u200bop", "stop"),
        ("Straße", "strasse"),
        ("a\x00b\x07c", "a b c"),
        ("  many   spaces\there ", "many spaces here"),
    ],
)
def test_normalize_examples(body: str, expected: str) -> None:
    assert normalize(body) == expected


def test_classification_is_frozen_and_intent_is_a_string() -> None:
    result = classify("STOP")
    assert isinstance(result, Classification)
    with pytest.raises(AttributeError):
        result.intent = Intent.NONE  # type: ignore[misc]
    assert Intent.OPT_OUT == "opt_out"
    assert {i.value for i in Intent} == {"opt_out", "opt_in", "help", "possible_opt_out", "none"}


def test_keyword_tables_are_derived_from_the_rules() -> None:
    assert keywords.OPT_OUT_KEYWORDS["stop"] == "en"
    assert keywords.OPT_OUT_KEYWORDS["no mas"] == "es"
    assert {"start", "unstop", "yes", "si", "alta"} == set(keywords.OPT_IN_KEYWORDS)
    assert keywords.HELP_KEYWORDS == {"help": "en", "info": "en", "ayuda": "es"}
    # every FCC per-se word, Twilio's defaults and AWS's required list are opt-out keywords
    fcc = {"stop", "quit", "end", "revoke", "opt out", "cancel", "unsubscribe"}
    twilio = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
    aws = {"arret", "cancel", "end", "optout", "quit", "remove", "stop", "td", "unsubscribe"}
    assert fcc | twilio | aws <= set(keywords.OPT_OUT_KEYWORDS)
    tables = (keywords.OPT_OUT_KEYWORDS, keywords.OPT_IN_KEYWORDS, keywords.HELP_KEYWORDS)
    for table in tables:
        for word, language in table.items():
            assert normalize(word) == word
            assert language in {"en", "es"}


# --- properties ---------------------------------------------------------------------------

PADDING = list(" \t\n\r\u00a0\u2003\u3000\u200b\u200d\ufeff!?.,;:¡¿-—–'\"()[]…*#@/&+~") + list(
    "🛑✋👍🙏😡😀🚫📵"
)
PHRASES = [
    ("please stop texting me", OUT),
    ("remove me from your list", OUT),
    ("do not text me anymore", OUT),
    ("i don't want these texts", OUT),
    ("no me envien mas mensajes", OUT),
    ("sacame de la lista", OUT),
    ("don't stop texting me", MAYBE),
    ("i'll stop by at 3", MAYBE),
    ("wrong number", MAYBE),
    ("yes i will be there", NONE),
]
SAMPLES = (
    [(word, OUT) for word in keywords.OPT_OUT_KEYWORDS]
    + [(word, IN) for word in keywords.OPT_IN_KEYWORDS]
    + [(word, HELP) for word in keywords.HELP_KEYWORDS]
    + PHRASES
)
padding = st.text(alphabet=PADDING, max_size=6)
# between words, anything but what ends a sentence ("remove me. from the list" is two sentences)
INNER = [ch for ch in PADDING if ch not in ".!?;\n\r¡¿…"]
separator = st.text(alphabet=INNER, min_size=1, max_size=3).map(lambda s: " " + s)


@settings(max_examples=300)
@given(st.sampled_from(SAMPLES), padding, padding, st.data())
def test_padding_and_case_do_not_change_classification(sample, left, right, data) -> None:
    text, expected_intent = sample
    baseline = classify(text)
    assert baseline.intent == expected_intent
    flips = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    cased = "".join(ch.upper() if up else ch.lower() for ch, up in zip(text, flips, strict=True))
    words = cased.split(" ")
    seps = data.draw(st.lists(separator, min_size=len(words) - 1, max_size=len(words) - 1))
    body = left + words[0] + "".join(s + w for s, w in zip(seps, words[1:], strict=True)) + right
    result = classify(body)
    assert (result.intent, result.language, result.keyword) == (
        baseline.intent,
        baseline.language,
        baseline.keyword,
    )


@settings(max_examples=500)
@given(st.text())
def test_classify_total_on_arbitrary_text(body: str) -> None:
    result = classify(body)
    assert isinstance(result.intent, Intent)
    assert result.language in {"en", "es"}
    assert result.normalized == normalize(body)


@settings(max_examples=500)
@given(st.text())
def test_normalize_is_idempotent(body: str) -> None:
    once = normalize(body)
    assert normalize(once) == once
    assert once == once.strip()
    assert "  " not in once
