"""Tests for gateway.gsm7: GSM-7 detection, segment counts, smart encoding."""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.gsm7 import (
    BASIC_CHARSET,
    EXTENSION_CHARSET,
    LOOKALIKES,
    is_gsm7,
    segments,
    to_gsm7,
)

SPANISH_GSM7 = "éñÑüÜ¿¡àèìòù"
HEALTH_WORKER = "👩\u200d⚕\ufe0f"  # woman, zero-width joiner, staff of Aesculapius, emoji style


def test_basic_charset_is_the_gsm_03_38_table() -> None:
    assert len(BASIC_CHARSET) == len(set(BASIC_CHARSET)) == 128
    landmarks = {0x00: "@", 0x01: "£", 0x02: "$", 0x03: "¥", 0x09: "Ç", 0x0A: "\n", 0x0D: "\r"}
    landmarks |= {0x10: "Δ", 0x11: "_", 0x1B: "\x1b", 0x1F: "É", 0x20: " ", 0x24: "¤"}
    landmarks |= {0x30: "0", 0x40: "¡", 0x41: "A", 0x5B: "Ä", 0x5F: "§", 0x60: "¿"}
    landmarks |= {0x61: "a", 0x7B: "ä", 0x7C: "ö", 0x7D: "ñ", 0x7E: "ü", 0x7F: "à"}
    for code, char in landmarks.items():
        assert BASIC_CHARSET[code] == char
    assert set(BASIC_CHARSET) >= set(string.ascii_letters + string.digits)
    assert set(EXTENSION_CHARSET) == set("\f^{}\\[~]|€")
    assert not set(EXTENSION_CHARSET) & set(BASIC_CHARSET)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("Hello, world! 1+1=2 (ok) #5 50% & 'so' \"on\"?", True),
        ("@£$¥¤§ ΔΦΓΛΩΠΨΣΘΞ ÆæßÉ ØøÅå ÄÖÑÜäöñüà Ç", True),
        (SPANISH_GSM7, True),
        ("Le recordamos su cita el sábado", False),  # á is not GSM-7
        ("line\nbreak\r\n", True),
        (EXTENSION_CHARSET, True),
        ("€5", True),
        ("ç", False),  # only the capital Ç is in the table
        ("`", False),
        ("\t", False),
        ("\x1b", False),  # the escape code, not a character
        ("’", False),
        ("…", False),
        ("\u00a0", False),
        ("😀", False),
        ("Ω", True),  # U+03A9 GREEK CAPITAL LETTER OMEGA
        ("\u2126", False),  # OHM SIGN: looks the same, is not
        ("e\u0301", False),  # é written as e + combining accent
    ],
)
def test_is_gsm7(text: str, expected: bool) -> None:
    assert is_gsm7(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 1),
        ("a", 1),
        # GSM-7: 160 septets in one message, 153 per segment beyond
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 459, 3),
        ("a" * 460, 4),
        ("a" * 1530, 10),
        # the extension table takes two septets
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("a" * 158 + "€", 1),
        ("a" * 159 + "€", 2),
        ("{}" * 39 + "[]", 1),  # 80 characters, 160 septets
        ("{}" * 40 + "|", 2),
        ("[" * 153, 2),
        ("[" * 154, 3),
        # UCS-2: 70 UTF-16 code units in one message, 67 per segment beyond
        ("á" * 70, 1),
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
        ("€" * 69 + "á", 1),  # € is one code unit in UCS-2
        ("€" * 70 + "á", 2),
        # a character outside the BMP (most emoji) is a surrogate pair: two units
        ("😀", 1),
        ("😀" * 35, 1),
        ("😀" * 35 + "a", 2),
        ("a" * 68 + "😀", 1),
        ("a" * 69 + "😀", 2),
        ("😀" * 67, 2),
        ("😀" * 68, 3),
        (HEALTH_WORKER * 14, 1),  # 5 units each
        (HEALTH_WORKER * 15, 2),
    ],
)
def test_segments(text: str, expected: int) -> None:
    assert segments(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Le recordamos su cita el sábado 3 de marzo a las 14:30",
            "Le recordamos su cita el sabado 3 de marzo a las 14:30",
        ),
        ("¿Confirma su cita? Responda SÍ o NO.", "¿Confirma su cita? Responda SI o NO."),
        (
            "El niño y la señora Müller: ¡qué bien! Ñandú",
            "El niño y la señora Müller: ¡qué bien! Ñandu",
        ),
        ("à è ì ò ù À È Ì Ò Ù", "à è ì ò ù A E I O U"),
        ("á í ó ú Á Í Ó Ú", "a i o u A I O U"),
        ("â ê î ô û Â Ê Î Ô Û", "a e i o u A E I O U"),
        ("ç Ç ã õ", "c Ç a o"),
        (
            "‘single’ ‚low‛ “double” „low‟ «guillemets»",
            '\'single\' \'low\' "double" "low" "guillemets"',
        ),
        ("don’t — 9–5 − 3 ‐ x", "don't - 9-5 - 3 - x"),
        ("Wait…", "Wait..."),
        ("a\u00a0b\u2009c\u202fd\u3000e\tf", "a b c d e f"),
        ("zero\u200bwidth\u2060joined\ufeff\u00ad", "zerowidthjoined"),
        ("• one\n• two", "- one\n- two"),
        ("Botox™ and Juvéderm®", "BotoxTM and Juvéderm(R)"),
        ("ﬁnal ＡＢＣ ő ł", "final ABC o l"),
        ("sa\u0301bado e\u0301", "sabado é"),  # decomposed accents
        ("x\u200dy", "xy"),
        # characters without a look-alike stay, and so the text stays UCS-2
        ("Su cita es mañana 😀", "Su cita es mañana 😀"),
        ("Hasta mañana 👋🏽 “Dra. Pérez”", 'Hasta mañana 👋🏽 "Dra. Pérez"'),
        (f"Nurse {HEALTH_WORKER} here", f"Nurse {HEALTH_WORKER} here"),  # joiner kept
        ("1\ufe0f\u20e3 ½ 中文", "1\ufe0f\u20e3 ½ 中文"),
    ],
)
def test_to_gsm7(text: str, expected: str) -> None:
    assert to_gsm7(text) == expected


def test_spanish_reminder_becomes_one_gsm7_segment() -> None:
    text = "Le recordamos su cita el sábado 3 de marzo a las 14:30"
    assert not is_gsm7(text)
    smart = to_gsm7(text)
    assert is_gsm7(smart)
    assert "sabado" in smart
    long_text = (text + ". ") * 2  # 112 characters: two UCS-2 segments, one GSM-7 segment
    assert (segments(long_text), segments(to_gsm7(long_text))) == (2, 1)


def test_emoji_keeps_the_text_ucs2() -> None:
    smart = to_gsm7("Gracias por su visita 😀 ¡Hasta pronto!")
    assert smart == "Gracias por su visita 😀 ¡Hasta pronto!"
    assert not is_gsm7(smart)
    assert segments(smart) == 1


def test_lookalike_table() -> None:
    for char, replacement in LOOKALIKES.items():
        assert len(char) == 1
        assert not is_gsm7(char), char
        assert is_gsm7(replacement), char
        assert unicodedata.normalize("NFC", char) == char
    for char in SPANISH_GSM7 + "Ç":
        assert char not in LOOKALIKES
        assert to_gsm7(char) == char


def test_expanding_lookalikes_can_cost_a_segment() -> None:
    # "…" -> "..." triples the length; a text made mostly of them grows past one segment.
    assert segments("…" * 70) == 1
    assert segments(to_gsm7("…" * 70)) == 2


# --- properties ---------------------------------------------------------------------------

GSM7_CHARS = sorted(set(BASIC_CHARSET.replace("\x1b", "") + EXTENSION_CHARSET))
MAPPED = sorted(LOOKALIKES)


def _septets(text: str) -> int:
    return len(text) + sum(ch in EXTENSION_CHARSET for ch in text)


#: mapped characters whose look-alike is no more than two septets; "…" and "®" are longer
SHORT = [ch for ch in MAPPED if _septets(LOOKALIKES[ch]) <= 2]
gsm7_and_mapped = st.text(alphabet=st.sampled_from(GSM7_CHARS + MAPPED), max_size=400)
gsm7_and_short = st.text(alphabet=st.sampled_from(GSM7_CHARS + SHORT), max_size=400)


@settings(max_examples=500)
@given(st.one_of(st.text(), gsm7_and_mapped))
def test_to_gsm7_is_idempotent(text: str) -> None:
    once = to_gsm7(text)
    assert to_gsm7(once) == once


@settings(max_examples=300)
@given(gsm7_and_mapped)
def test_to_gsm7_of_gsm7_and_mapped_characters_is_gsm7(text: str) -> None:
    assert is_gsm7(to_gsm7(text))


@settings(max_examples=300)
@given(gsm7_and_short)
def test_to_gsm7_never_costs_a_segment(text: str) -> None:
    assert segments(to_gsm7(text)) <= segments(text)


@given(st.text(alphabet=st.sampled_from(GSM7_CHARS), max_size=400))
def test_gsm7_text_is_left_alone(text: str) -> None:
    assert is_gsm7(text)
    assert to_gsm7(text) == text
    assert segments(text) == (1 if _septets(text) <= 160 else -(-_septets(text) // 153))


@settings(max_examples=500)
@given(st.text(max_size=500))
def test_segments_at_least_one_and_bounded(text: str) -> None:
    count = segments(text)
    assert count >= 1
    assert count <= max(1, -(-2 * len(text) // 67))  # at worst two UTF-16 units a character
