"""Tests for gateway.phone: what a person types -> E.164, masking for logs, time zones."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import phone
from gateway.core.phone import InvalidPhoneNumber, is_e164, mask, normalize, time_zones

E164 = "+17863058649"

TYPED = [
    "+1 (786) 305-8649",
    "786.305.8649",
    "7863058649",
    "1-786-305-8649",
    "1 786 305 8649",
    "(786) 305-8649",
    "786-305-8649",
    "+1.786.305.8649",
    "+17863058649",
    "tel:+17863058649",
    "TEL:+1-786-305-8649",
    "tel:786-305-8649",
    " +1 786 305 8649 ",
    "\t786 305 8649\n",
    "\u00a0+1\u00a0786\u00a0305\u00a08649",
    "＋１ ７８６ ３０５ ８６４９",  # full-width, as some phone keyboards type them
    "７８６３０５８６４９",
]


@pytest.mark.parametrize("text", TYPED)
def test_normalize_what_people_type(text: str) -> None:
    assert normalize(text) == E164


@pytest.mark.parametrize("text", TYPED)
def test_parse_gives_the_number(text: str) -> None:
    number = phone.parse(text)
    assert (number.country_code, number.national_number) == (1, 7863058649)


INVALID = [
    "",
    "   ",
    "\n\t",
    "12345",
    "911",
    "abc",
    "phone",
    "None",
    "null",
    "+1 555",
    "+1 786 305 864",  # nine digits
    "+1 786 305 86490",  # eleven digits
    "+1 111 305 8649",  # no area code starts with 1
    "+0 786 305 8649",
    "tel:",
    "+",
    "1" * 50,
    "7" * 41,
    "+1" + "7863058649" * 5,
    "call me at 786-305-8649 after 5pm please thanks!!!",  # 50 characters
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_numbers_raise(text: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize(text)
    with pytest.raises(InvalidPhoneNumber):
        phone.parse(text)
    assert not is_e164(text)


@pytest.mark.parametrize("value", [None, 0, 7863058649, b"7863058649", ["7863058649"]])
def test_non_strings_raise(value: object) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize(value)  # type: ignore[arg-type]


def test_invalid_phone_number_is_a_value_error() -> None:
    # callers that catch ValueError (form parsing) still see it
    assert issubclass(InvalidPhoneNumber, ValueError)


def test_uk_mobile_stays_british() -> None:
    assert normalize("+44 7911 123456") == "+447911123456"
    assert normalize("+44 (0)7911 123456") == "+447911123456"
    assert normalize("07911 123456", region="GB") == "+447911123456"


def test_national_format_uses_the_region() -> None:
    # without a "+", the default region (US) decides
    with pytest.raises(InvalidPhoneNumber):
        normalize("07911 123456")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+17863058649", True),
        ("+447911123456", True),
        ("7863058649", False),
        ("+1 786 305 8649", False),
        ("+1-786-305-8649", False),
        ("tel:+17863058649", False),
        (" +17863058649", False),
        ("+17863058649 ", False),
        ("17863058649", False),
        ("+1786305864", False),
        ("", False),
        ("+17865550100", True),
    ],
)
def test_is_e164(text: str, expected: bool) -> None:
    assert is_e164(text) is expected


# --- mask ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+17863058649", "+1******8649"),
        ("+13125550110", "+1******0110"),
        ("+447911123456", "+44******3456"),
        ("+4930123456", "+49****3456"),
        ("+353861234567", "+353*****4567"),  # Ireland: three-digit country code
        ("+79123456789", "+7******6789"),  # Russia: one-digit country code other than 1
        ("+8613800138000", "+86*******8000"),
        (None, "-"),
        ("", "-"),
    ],
)
def test_mask(e164: str | None, expected: str) -> None:
    assert mask(e164) == expected


def test_mask_of_a_very_short_number_still_hides_digits() -> None:
    # Niue numbers have four digits after +683: "the last four" would be the whole number
    masked = mask("+6834002")
    assert masked.startswith("+683")
    assert "4002" not in masked
    assert "*" in masked


@pytest.mark.parametrize("text", ["1234", "12", "+123"])
def test_mask_of_four_digits_or_fewer_hides_all(text: str) -> None:
    assert set(mask(text)) == {"*"}


INTERNATIONAL = [
    "+447911123456",
    "+353861234567",
    "+79123456789",
    "+4930123456",
    "+33612345678",
    "+34612345678",
    "+5215512345678",
    "+8613800138000",
    "+61412345678",
    "+6834002",
]


def assert_masked(e164: str, masked: str) -> None:
    country = str(phonenumbers.parse(e164).country_code)
    national = e164[1 + len(country) :]
    assert masked.startswith("+" + country)
    assert masked[1 + len(country) :].strip("*0123456789") == ""
    shown = masked[1 + len(country) :].lstrip("*")
    assert national.endswith(shown)
    assert len(shown) <= 4
    assert national not in masked
    assert e164 not in masked
    assert len(masked) == len(e164)
    if len(national) >= 8:
        assert masked.endswith(e164[-4:])


@pytest.mark.parametrize("e164", INTERNATIONAL)
def test_mask_international(e164: str) -> None:
    assert_masked(e164, mask(e164))


# --- time zones ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+13125550110", ("America/Chicago",)),
        ("+17863058649", ("America/New_York",)),
        ("+12125550100", ("America/New_York",)),
        ("+19035551234", ("America/Chicago",)),
        ("+18005550199", ()),  # toll-free: the whole country, which tells nothing
        ("+18882345678", ()),
        ("not a number", ()),
        ("", ()),
    ],
)
def test_time_zones(e164: str, expected: tuple[str, ...]) -> None:
    assert time_zones(e164) == expected


def test_time_zones_are_real_zones() -> None:
    from zoneinfo import ZoneInfo

    for zone in time_zones("+447911123456"):
        ZoneInfo(zone)
    assert "Europe/London" in time_zones("+447911123456")


# --- properties ---------------------------------------------------------------------------------

AREA_CODES = [212, 305, 312, 415, 786, 903]
nanp = st.builds(
    lambda area, exchange, line: (area, exchange, line),
    st.sampled_from(AREA_CODES),
    st.integers(200, 999),
    st.integers(0, 9999),
)


@settings(max_examples=300)
@given(nanp)
def test_normalize_nanp_properties(parts: tuple[int, int, int]) -> None:
    area, exchange, line = parts
    e164 = f"+1{area}{exchange}{line:04d}"
    assert normalize(e164) == e164
    assert normalize(normalize(e164)) == normalize(e164)
    assert is_e164(e164)
    for typed in (
        f"({area}) {exchange}-{line:04d}",
        f"{area}.{exchange}.{line:04d}",
        f"{area}{exchange}{line:04d}",
        f"1-{area}-{exchange}-{line:04d}",
        f"tel:+1{area}{exchange}{line:04d}",
        phonenumbers.format_number(phone.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL),
        phonenumbers.format_number(phone.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL),
    ):
        assert normalize(typed) == e164
        assert not is_e164(typed)
    assert mask(e164) == f"+1******{line:04d}"
    assert_masked(e164, mask(e164))
    assert len(time_zones(e164)) == 1


@settings(max_examples=500)
@given(st.text(max_size=60))
def test_normalize_is_total(text: str) -> None:
    # anything at all either normalises to a canonical E.164 number or raises InvalidPhoneNumber
    try:
        e164 = normalize(text)
    except InvalidPhoneNumber:
        assert not is_e164(text)
        return
    assert is_e164(e164)
    assert normalize(e164) == e164


@settings(max_examples=300)
@given(st.text(alphabet="0123456789+-() .", max_size=20))
def test_mask_never_shows_more_than_country_code_and_four_digits(text: str) -> None:
    try:
        e164 = normalize(text)
    except InvalidPhoneNumber:
        return
    assert_masked(e164, mask(e164))


@pytest.mark.parametrize(
    ("area_code", "zones"),
    [
        ("308", {"America/Chicago", "America/Denver"}),
        ("850", {"America/New_York", "America/Chicago"}),
        ("448", {"America/New_York", "America/Chicago"}),
        ("812", {"America/New_York", "America/Chicago"}),
        ("906", {"America/New_York", "America/Chicago"}),
        ("208", {"America/Boise", "America/Los_Angeles"}),
        ("541", {"America/Los_Angeles", "America/Boise"}),
        ("605", {"America/Chicago", "America/Denver"}),
        ("701", {"America/Chicago", "America/Denver"}),
        ("807", {"America/Toronto", "America/Winnipeg"}),
        ("709", {"America/St_Johns", "America/Goose_Bay"}),
        ("306", {"America/Regina", "America/Edmonton"}),
        ("212", {"America/New_York"}),  # not split: phonenumbers' answer
        ("312", {"America/Chicago"}),
    ],
)  # fmt: skip
def test_time_zones_of_split_area_codes(area_code: str, zones: set[str]) -> None:
    assert zones <= set(time_zones(f"+1{area_code}5550100"))
    if len(zones) == 1:
        assert set(time_zones(f"+1{area_code}5550100")) == zones


def test_the_area_code_table_is_well_formed() -> None:
    from zoneinfo import ZoneInfo

    table = phone.area_code_zones()
    assert len(table) >= 35
    source = phone.AREA_CODE_ZONES.read_text(encoding="utf-8")
    assert "nationalnanpa.com" in source and "49 CFR Part 71" in source
    for area_code, zones in table.items():
        assert len(area_code) == 3 and area_code[0] in "23456789", area_code
        assert len(zones) >= 2 and len(set(zones)) == len(zones), area_code
        for zone in zones:
            ZoneInfo(zone)
        number = phonenumbers.parse(f"+1{area_code}5550100")
        assert number.country_code == 1
        # phonenumbers' own zone for the code is always among them
        assert set(phone.time_zones(f"+1{area_code}5550100")) >= set(zones)
