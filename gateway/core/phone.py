"""Phone numbers: parse anything a person types into E.164, mask for logs, find time zones.

Pure functions over the ``phonenumbers`` library and one data file read once (the time zones of
area codes that span several).
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import phonenumbers
from phonenumbers import timezone as pn_timezone

DEFAULT_REGION = "US"

#: phonenumbers' answer when it cannot place a number
_UNKNOWN_ZONE = "Etc/Unknown"


class InvalidPhoneNumber(ValueError):
    """The text is not a valid, dialable phone number."""


class SwitchboardNumber(InvalidPhoneNumber):
    """The number has an extension: a switchboard line, which no text message can reach."""


def parse(text: str, region: str = DEFAULT_REGION) -> phonenumbers.PhoneNumber:
    """Parse ``text`` (``+1 (786) 305-8649``, ``786.305.8649``, ``tel:+1...``) or raise.

    A number with an extension (``ext. 45``, ``x45``, ``;ext=45``, ``extension 45``, ``#45``,
    ``,45``) is refused (SwitchboardNumber), never cut down to its main line: a text reaches the
    switchboard, not the person at the extension.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidPhoneNumber("empty phone number")
    cleaned = text.strip()
    if cleaned.lower().startswith("tel:"):
        cleaned = cleaned[4:]
    if len(cleaned) > 40:
        raise InvalidPhoneNumber("phone number too long")
    try:
        number = phonenumbers.parse(cleaned, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number ({exc._msg})") from None
    if number.extension:
        raise SwitchboardNumber(
            "has an extension: a switchboard line cannot receive text messages; "
            "give the patient's own mobile number, without an extension"
        )
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("not a valid phone number")
    return number


def normalize(text: str, region: str = DEFAULT_REGION) -> str:
    """The E.164 form of ``text`` (``+17863058649``); raises InvalidPhoneNumber."""
    return phonenumbers.format_number(parse(text, region), phonenumbers.PhoneNumberFormat.E164)


def is_e164(text: str) -> bool:
    """True when ``text`` is already a valid number in canonical E.164 form."""
    try:
        return normalize(text) == text
    except InvalidPhoneNumber:
        return False


def mask(e164: str | None) -> str:
    """A loggable form that keeps the country code and the last four digits: ``+1******8649``."""
    if not e164:
        return "-"
    digits = e164.lstrip("+")
    if len(digits) <= 4:
        return "*" * len(digits)
    country = _country_code(digits)
    national = digits[len(country) :]
    # the last four digits, but never the whole number: at least half the rest stays hidden
    shown = min(4, len(national) // 2)
    return f"+{country}{'*' * (len(national) - shown)}{national[len(national) - shown :]}"


def _country_code(digits: str) -> str:
    """The calling code ``digits`` starts with (1 to 3 digits; the codes are prefix-free)."""
    for length in (1, 2, 3):
        prefix = digits[:length]
        if prefix.isdigit() and int(prefix) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return prefix
    return ""


def time_zones(e164: str) -> tuple[str, ...]:
    """The IANA zones the number's prefix is assigned to; empty when unknown or too broad.

    A US area code usually maps to one zone; toll-free and non-geographic numbers map to dozens,
    which tells nothing, so those give an empty tuple (the caller falls back to the practice's).
    phonenumbers names one zone per prefix even where an area code spans two (308: Central and
    Mountain; 850: Eastern and Central): for those, every zone of the area code is added, from
    ``data/nanp_area_code_zones.csv`` (public sources named in the file).
    """
    try:
        number = phonenumbers.parse(e164, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return ()
    # what ``parse`` checks, the number's type found once: valid means a known type
    kind = phonenumbers.number_type(number)
    if number.extension or kind == phonenumbers.PhoneNumberType.UNKNOWN:
        return ()
    if pn_timezone.is_number_type_geographical(kind, number.country_code):
        zones = pn_timezone.time_zones_for_geographical_number(number)
    else:  # toll-free, non-geographic: rare
        zones = pn_timezone.time_zones_for_number(number)
    zones = tuple(z for z in zones if z != _UNKNOWN_ZONE)
    zones = zones if 0 < len(zones) <= 4 else ()
    if number.country_code == 1:
        spanned = area_code_zones().get(str(number.national_number)[:3], ())
        zones = tuple(dict.fromkeys((*spanned, *zones)))
    return zones


AREA_CODE_ZONES = Path(__file__).parent / "data" / "nanp_area_code_zones.csv"


@cache
def area_code_zones() -> dict[str, tuple[str, ...]]:
    """NANP area code -> every IANA zone observed in it, for the codes that span several."""
    with AREA_CODE_ZONES.open(encoding="utf-8", newline="") as file:
        rows = csv.DictReader(line for line in file if not line.startswith("#"))
        return {row["area_code"]: tuple(row["time_zones"].split(";")) for row in rows}


#: number types that cannot receive a text message
_NOT_TEXTABLE = {
    phonenumbers.PhoneNumberType.FIXED_LINE: "a landline",
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    phonenumbers.PhoneNumberType.SHARED_COST: "a shared-cost number",
    phonenumbers.PhoneNumberType.UAN: "a universal access number",
    phonenumbers.PhoneNumberType.VOICEMAIL: "a voicemail number",
    phonenumbers.PhoneNumberType.PAGER: "a pager",
}


def not_textable_reason(e164: str) -> str | None:
    """Why the numbering plan says this number cannot take an SMS, or None if it may.

    US numbers are "fixed line or mobile" in the plan, so this only catches what is certain; the
    carrier's answer (Twilio 21614 / 30006) marks the rest at send time.
    """
    return _NOT_TEXTABLE.get(phonenumbers.number_type(parse(e164)))
