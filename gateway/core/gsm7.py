"""SMS encoding: GSM 03.38 (GSM-7) or UCS-2, segment counts, and "smart encoding". Pure.

A text made only of GSM-7 characters is sent in 7-bit septets: 160 in a single message, 153 per
segment once it is split (the rest of each segment carries the concatenation header).  The
characters of the extension table (``^ { } \\ [ ] ~ | €`` and form feed) take two septets each,
an escape and the character.  Any other character makes the whole text UCS-2: 70 UTF-16 code
units in a single message, 67 per segment; a character outside the Basic Multilingual Plane
(most emoji) takes two units.  :func:`segments` counts like Twilio's documentation does:
``ceil(length / 153)`` (or 67); a carrier that will not split an escape sequence or a surrogate
pair across two segments may, rarely, need one more.

The escape code (0x1B) is part of the basic table but is not a character a text can contain, so a
literal U+001B is not GSM-7.

:func:`to_gsm7` replaces look-alikes (curly quotes, dashes, odd spaces, accented letters GSM-7
lacks) so that a text written in a word processor stays GSM-7: one segment instead of three for a
long reminder.  Characters without a look-alike (emoji, other scripts) are left as they are, and
so is the GSM-7 that Spanish needs (é ñ ü ¿ ¡ à è ì ò ù).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

__all__ = [
    "BASIC_CHARSET",
    "EXTENSION_CHARSET",
    "LOOKALIKES",
    "is_gsm7",
    "segments",
    "to_gsm7",
]

#: GSM 03.38 default alphabet, indexed by septet; 0x1B is the escape to the extension table.
BASIC_CHARSET = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Characters of the extension table; each is sent as escape + character, two septets.
EXTENSION_CHARSET = "\f^{}\\[~]|€"

_ESCAPE = "\x1b"
_GSM7 = frozenset(BASIC_CHARSET.replace(_ESCAPE, "") + EXTENSION_CHARSET)
_EXTENSION = frozenset(EXTENSION_CHARSET)

_SINGLE_GSM7, _MULTI_GSM7 = 160, 153
_SINGLE_UCS2, _MULTI_UCS2 = 70, 67


def _table(replacement: str, characters: str) -> dict[str, str]:
    return dict.fromkeys(characters, replacement)


#: Characters that are not GSM-7 -> GSM-7 look-alike ("" to drop an invisible character).
LOOKALIKES: dict[str, str] = {
    # quotes and apostrophes
    **_table("'", "‘’‚‛′‵ʹʻʼʽˈˊˋ´`＇‹›❛❜"),
    **_table('"', "“”„‟″‶ʺˮ˝«»❝❞〝〞＂"),
    # dashes, hyphens, minus signs
    **_table("-", "‐‑‒–—―−⁃﹘﹣－"),
    # bullets and dots used as separators
    **_table("-", "•‣◦∙·⁌⁍"),
    # invisible: zero-width space, non-joiner, joiner, word joiner, BOM, soft hyphen
    **_table("", "\u200b\u200c\u200d\u2060\ufeff\u00ad"),
    # tab and no-break space (the other Unicode space separators are mapped by category)
    **_table(" ", "\t\u00a0"),
    **_table("\n", "\u2028\u2029"),
    # letters with accents GSM-7 lacks; é ñ ü à è ì ò ù and friends are GSM-7 already
    **_table("a", "áâãāăą"),
    **_table("A", "ÁÂÃÀĀĂĄ"),
    **_table("e", "êëēėę"),
    **_table("E", "ÊËÈĒĖĘ"),
    **_table("i", "íîïī"),
    **_table("I", "ÍÎÏÌĪ"),
    **_table("o", "óôõō"),
    **_table("O", "ÓÔÕÒŌ"),
    **_table("u", "úûū"),
    **_table("U", "ÚÛÙŪ"),
    **_table("c", "çćč"),
    **_table("C", "ĆČ"),
    **_table("y", "ýÿ"),
    **_table("Y", "ÝŸ"),
    **_table("n", "ńň"),
    **_table("s", "śš"),
    **_table("S", "ŚŠ"),
    **_table("z", "źżž"),
    **_table("Z", "ŹŻŽ"),
    **_table("l", "ł"),
    **_table("L", "Ł"),
    **_table("d", "đ"),
    **_table("D", "Đ"),
    "œ": "oe",
    "Œ": "OE",
    # symbols
    "…": "...",
    "™": "TM",
    "®": "(R)",
    "©": "(C)",
    "×": "x",
    "⁄": "/",
    "ˆ": "^",
    "˜": "~",
    "¦": "|",
}

#: Joiners are kept between two characters that stay non-GSM-7 (emoji sequences such as 👩‍⚕️,
#: scripts that need them) and dropped elsewhere.
_JOINERS = frozenset("\u200c\u200d")


def is_gsm7(text: str) -> bool:
    """Whether every character is in the GSM 03.38 basic set or its extension table."""
    return all(ch in _GSM7 for ch in text)


def segments(text: str) -> int:
    """How many SMS segments ``text`` takes (1 for the empty text)."""
    if is_gsm7(text):
        length = len(text) + sum(ch in _EXTENSION for ch in text)  # septets
        single, multi = _SINGLE_GSM7, _MULTI_GSM7
    else:
        length = sum(_utf16_units(ch) for ch in text)
        single, multi = _SINGLE_UCS2, _MULTI_UCS2
    return 1 if length <= single else -(-length // multi)


def to_gsm7(text: str) -> str:
    """``text`` with non-GSM-7 characters replaced by GSM-7 look-alikes where there is one.

    Works on NFC text, one character and its combining marks at a time: GSM-7 characters stay,
    :data:`LOOKALIKES` are replaced, other Unicode spaces become a space, and a letter whose
    compatibility decomposition without accents is GSM-7 (``ő`` -> ``o``, ``Ａ`` -> ``A``,
    ``ﬁ`` -> ``fi``) becomes that, when it is no more than two septets per UTF-16 unit.  Stray
    accents after a replaced or GSM-7 character are dropped.  Anything else stays as it is.
    Idempotent.
    """
    if _GSM7.issuperset(text):  # GSM-7 already (NFC too: none of its characters decomposes)
        return text
    clusters = list(_clusters(unicodedata.normalize("NFC", text)))
    plain = [_plain(cluster) for cluster in clusters]
    out: list[str] = []
    for i, (cluster, replacement) in enumerate(zip(clusters, plain, strict=True)):
        if cluster in _JOINERS and _kept(plain, i - 1) and _kept(plain, i + 1):
            out.append(cluster)
        else:
            out.append(cluster if replacement is None else replacement)
    return unicodedata.normalize("NFC", "".join(out))


# --- helpers ------------------------------------------------------------------------------


def _utf16_units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch).startswith("M")


def _is_accent(ch: str) -> bool:
    """A non-spacing mark that is an accent, not a variation selector (emoji presentation)."""
    code = ord(ch)
    variation_selector = 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF
    return unicodedata.category(ch) == "Mn" and not variation_selector


def _clusters(text: str) -> Iterator[str]:
    """``text`` cut before every character that is not a combining mark."""
    start = 0
    for i, ch in enumerate(text):
        if i > start and not _is_mark(ch):
            yield text[start:i]
            start = i
    if text:
        yield text[start:]


def _kept(plain: list[str | None], i: int) -> bool:
    """Whether cluster ``i`` exists and stays as it is, not GSM-7."""
    return 0 <= i < len(plain) and plain[i] is None


def _plain(cluster: str) -> str | None:
    """The GSM-7 replacement of a character with its marks, or None to leave it as it is."""
    base, marks = cluster[0], cluster[1:]
    if _is_mark(base) or not all(_is_accent(mark) for mark in marks):
        return None
    return _replace(base)


def _replace(ch: str) -> str | None:
    if ch in _GSM7:
        return ch
    if ch in LOOKALIKES:
        return LOOKALIKES[ch]
    if unicodedata.category(ch) == "Zs":
        return " "
    return _decomposed(ch)


def _decomposed(ch: str) -> str | None:
    """The compatibility decomposition of ``ch`` without marks, when it is a short GSM-7 text."""
    parts = unicodedata.normalize("NFKD", ch)
    candidate = "".join(LOOKALIKES.get(p, p) for p in parts if not _is_mark(p))
    septets = len(candidate) + sum(p in _EXTENSION for p in candidate)
    if (
        candidate
        and is_gsm7(candidate)
        and not any(p.isspace() for p in candidate)
        and septets <= 2 * _utf16_units(ch)
    ):
        return candidate
    return None
