"""Tests for gateway.windows: the local-time sending window across zones and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import phone, windows
from gateway.core.windows import Window, contains, is_zone, next_opening, zones_for

NY, CHI = "America/New_York", "America/Chicago"
EASTERN, CENTRAL = ZoneInfo(NY), ZoneInfo(CHI)
DEFAULT = Window(time(8), time(20))
LEGAL = Window(time(8), time(21))
OFFICE = Window(time(9), time(17))
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def eastern(*args: int) -> datetime:
    return datetime(*args, tzinfo=EASTERN)


def test_window_str_and_validation() -> None:
    assert str(DEFAULT) == "08:00-20:00"
    assert str(LEGAL) == "08:00-21:00"
    assert str(Window(time(8, 30), time(19, 45))) == "08:30-19:45"
    assert str(Window(time(8, 0, 30), time(20))) == "08:00:30-20:00"
    assert Window(*(time(8), time(20))) == DEFAULT  # config's (start, end) pair
    with pytest.raises(ValueError):
        Window(time(20), time(8))
    with pytest.raises(ValueError):
        Window(time(8), time(8))
    with pytest.raises(ValueError):
        Window(time(8, tzinfo=UTC), time(20, tzinfo=UTC))
    with pytest.raises(AttributeError):
        DEFAULT.start = time(7)  # type: ignore[misc]


# --- contains across the DST changes (2026-03-08 spring forward, 2026-11-01 fall back) -----


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        # winter, EST = UTC-5: the same UTC hour is an hour earlier locally
        (utc(2026, 3, 6, 12, 30), False),  # Fri 07:30 EST
        (utc(2026, 3, 6, 13, 0), True),  # Fri 08:00 EST
        (utc(2026, 3, 7, 0, 59), True),  # Fri 19:59 EST
        (utc(2026, 3, 7, 1, 0), False),  # Fri 20:00 EST
        # spring forward: Sun 2026-03-08 02:00 EST -> 03:00 EDT
        (utc(2026, 3, 8, 6, 59), False),  # Sun 01:59 EST
        (utc(2026, 3, 8, 7, 0), False),  # Sun 03:00 EDT
        (utc(2026, 3, 8, 11, 59), False),  # Sun 07:59 EDT
        (utc(2026, 3, 8, 12, 0), True),  # Sun 08:00 EDT
        (utc(2026, 3, 9, 11, 59), False),  # Mon 07:59 EDT
        (utc(2026, 3, 9, 12, 0), True),  # Mon 08:00 EDT
        (utc(2026, 3, 9, 12, 30), True),  # Mon 08:30 EDT
        (utc(2026, 3, 9, 23, 59, 59), True),  # Mon 19:59:59 EDT
        (utc(2026, 3, 10, 0, 0), False),  # Mon 20:00 EDT
        # fall back: Sun 2026-11-01 02:00 EDT -> 01:00 EST
        (utc(2026, 10, 31, 12, 0), True),  # Sat 08:00 EDT
        (utc(2026, 11, 1, 5, 30), False),  # Sun 01:30 EDT, first reading
        (utc(2026, 11, 1, 6, 30), False),  # Sun 01:30 EST, second reading
        (utc(2026, 11, 1, 12, 0), False),  # Sun 07:00 EST: a summer 08:00 in UTC
        (utc(2026, 11, 1, 12, 59), False),  # Sun 07:59 EST
        (utc(2026, 11, 1, 13, 0), True),  # Sun 08:00 EST
        (utc(2026, 11, 2, 12, 59), False),  # Mon 07:59 EST
        (utc(2026, 11, 2, 13, 0), True),  # Mon 08:00 EST
        (utc(2026, 11, 3, 0, 59), True),  # Mon 19:59 EST
        (utc(2026, 11, 3, 1, 0), False),  # Mon 20:00 EST
    ],
)
def test_contains_new_york_across_dst(instant: datetime, inside: bool) -> None:
    assert contains(DEFAULT, instant, [NY]) is inside
    # the zone the instant is written in does not matter
    assert contains(DEFAULT, instant.astimezone(EASTERN), [NY]) is inside
    assert contains(DEFAULT, instant.astimezone(ZoneInfo("Asia/Tokyo")), (NY,)) is inside


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        (eastern(2026, 3, 8, 7, 59), False),
        (eastern(2026, 3, 8, 8, 0), True),
        (eastern(2026, 3, 9, 7, 59), False),
        (eastern(2026, 3, 9, 8, 0), True),
        (eastern(2026, 11, 1, 7, 59), False),
        (eastern(2026, 11, 1, 8, 0), True),
        (eastern(2026, 11, 2, 7, 59), False),
        (eastern(2026, 11, 2, 8, 0), True),
        (eastern(2026, 11, 2, 19, 59, 59), True),
        (eastern(2026, 11, 2, 20, 0), False),
    ],
)
def test_contains_reads_local_wall_time_the_morning_after_each_change(
    local: datetime, inside: bool
) -> None:
    assert contains(DEFAULT, local, [NY]) is inside


@pytest.mark.parametrize(
    ("window", "local", "inside"),
    [
        (LEGAL, eastern(2026, 7, 1, 7, 59), False),
        (LEGAL, eastern(2026, 7, 1, 8, 0), True),
        (LEGAL, eastern(2026, 7, 1, 20, 30), True),
        (LEGAL, eastern(2026, 7, 1, 20, 59, 59), True),
        (LEGAL, eastern(2026, 7, 1, 21, 0), False),
        (DEFAULT, eastern(2026, 7, 1, 20, 30), False),
        (OFFICE, eastern(2026, 7, 1, 8, 30), False),
        (OFFICE, eastern(2026, 7, 1, 9, 0), True),
        (OFFICE, eastern(2026, 7, 1, 16, 59), True),
        (OFFICE, eastern(2026, 7, 1, 17, 0), False),
        (OFFICE, eastern(2026, 12, 1, 9, 0), True),
        (OFFICE, eastern(2026, 12, 1, 17, 0), False),
    ],
)
def test_contains_other_windows(window: Window, local: datetime, inside: bool) -> None:
    assert contains(window, local, [NY]) is inside


# --- next_opening ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("saturday_evening", "sunday_morning", "hours"),
    [
        # ordinary winter weekend: EST on both sides
        (eastern(2026, 2, 28, 20, 0), utc(2026, 3, 1, 13, 0), 12),
        # spring forward in between: 20:00 EST -> 08:00 EDT, an hour shorter
        (eastern(2026, 3, 7, 20, 0), utc(2026, 3, 8, 12, 0), 11),
        # ordinary summer weekend: EDT on both sides
        (eastern(2026, 3, 14, 20, 0), utc(2026, 3, 15, 12, 0), 12),
        # fall back in between: 20:00 EDT -> 08:00 EST, an hour longer
        (eastern(2026, 10, 31, 20, 0), utc(2026, 11, 1, 13, 0), 13),
        # ordinary autumn weekend: EST on both sides
        (eastern(2026, 11, 7, 20, 0), utc(2026, 11, 8, 13, 0), 12),
    ],
)
def test_next_opening_saturday_evening_to_sunday_morning(
    saturday_evening: datetime, sunday_morning: datetime, hours: int
) -> None:
    assert saturday_evening.weekday() == 5
    opening = next_opening(DEFAULT, saturday_evening, [NY])
    assert opening == sunday_morning
    assert opening is not None and opening.tzinfo is UTC
    local = opening.astimezone(EASTERN)
    assert (local.weekday(), local.hour, local.minute) == (6, 8, 0)
    assert opening - saturday_evening == hours * HOUR


@pytest.mark.parametrize(
    ("window", "instant", "expected"),
    [
        (DEFAULT, utc(2026, 3, 9, 12, 30, 15), utc(2026, 3, 9, 12, 30, 15)),  # inside: itself
        (DEFAULT, eastern(2026, 3, 9, 8, 0), utc(2026, 3, 9, 12, 0)),  # as UTC
        (DEFAULT, eastern(2026, 3, 9, 6, 0), utc(2026, 3, 9, 12, 0)),  # later the same day
        (DEFAULT, eastern(2026, 3, 9, 20, 0), utc(2026, 3, 10, 12, 0)),  # the next morning
        (LEGAL, eastern(2026, 3, 9, 20, 0), utc(2026, 3, 10, 0, 0)),  # inside until 21:00
        (LEGAL, eastern(2026, 3, 9, 21, 0), utc(2026, 3, 10, 12, 0)),
        (OFFICE, eastern(2026, 3, 9, 8, 0), utc(2026, 3, 9, 13, 0)),
        (OFFICE, eastern(2026, 3, 9, 17, 0), utc(2026, 3, 10, 13, 0)),
        (OFFICE, eastern(2026, 10, 31, 17, 0), utc(2026, 11, 1, 14, 0)),  # 09:00 EST
        (OFFICE, eastern(2026, 3, 7, 17, 0), utc(2026, 3, 8, 13, 0)),  # 09:00 EDT
    ],
)
def test_next_opening_table(window: Window, instant: datetime, expected: datetime) -> None:
    assert next_opening(window, instant, [NY]) == expected


def test_next_opening_respects_the_horizon() -> None:
    friday_night = eastern(2026, 3, 6, 21, 0)
    assert next_opening(DEFAULT, friday_night, [NY]) == utc(2026, 3, 7, 13, 0)
    eleven_hours = timedelta(hours=11)  # 21:00 EST -> 08:00 EST
    assert next_opening(DEFAULT, friday_night, [NY], horizon=eleven_hours) == utc(2026, 3, 7, 13)
    almost = eleven_hours - timedelta(seconds=1)
    assert next_opening(DEFAULT, friday_night, [NY], horizon=almost) is None
    inside = utc(2026, 3, 9, 15, 0)
    assert next_opening(DEFAULT, inside, [NY], horizon=timedelta(0)) == inside
    assert next_opening(DEFAULT, friday_night, [NY], horizon=timedelta(0)) is None
    with pytest.raises(ValueError):
        next_opening(DEFAULT, inside, [NY], horizon=timedelta(seconds=-1))


# --- several zones ----------------------------------------------------------------------------


def test_zones_for_prefers_contact_then_number_then_practice() -> None:
    chicago_number = phone.time_zones("+13125550110")
    assert chicago_number == (CHI,)
    assert zones_for(None, chicago_number, NY) == (CHI,)
    assert zones_for("America/Denver", chicago_number, NY) == ("America/Denver",)
    assert zones_for("", chicago_number, NY) == (CHI,)
    assert zones_for("Mars/Olympus_Mons", chicago_number, NY) == (CHI,)
    assert zones_for("America/New_York ", (), NY) == (NY,)
    assert zones_for(None, (), NY) == (NY,)
    assert zones_for(None, phone.time_zones("+18005550100"), NY) == (NY,)  # toll-free
    assert zones_for(None, (CHI, NY, CHI), NY) == (CHI, NY)
    assert zones_for(None, ("Etc/Unknown", "Not/A_Zone"), "America/Phoenix") == ("America/Phoenix",)


def test_is_zone_says_whether_zones_for_takes_a_contacts_zone() -> None:
    assert is_zone("America/Denver")
    for name in (None, "", "Mars/Olympus_Mons", "America/New_York "):
        assert not is_zone(name)


def test_offset_changes_are_found_whatever_the_range_around_them() -> None:
    change = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 02:00 EST -> 03:00 EDT
    zone = ZoneInfo(NY)
    for start in (change - timedelta(days=3, minutes=17), change - timedelta(seconds=1)):
        for end in (change, change + timedelta(hours=5, seconds=3), change + timedelta(days=9)):
            assert list(windows._offset_changes(zone, start, end)) == [change]
    assert list(windows._offset_changes(zone, change, change + timedelta(days=2))) == []
    fall_back = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    year = list(windows._offset_changes(zone, change - timedelta(days=1), fall_back))
    assert year == [change, fall_back]


def test_a_chicago_number_of_a_new_york_practice_waits_for_chicago() -> None:
    zones = zones_for(None, (CHI,), NY)
    instant = eastern(2026, 7, 1, 8, 30)  # 07:30 in Chicago
    assert contains(DEFAULT, instant, [NY])
    assert not contains(DEFAULT, instant, zones)
    assert next_opening(DEFAULT, instant, zones) == utc(2026, 7, 1, 13, 0)  # 08:00 CDT


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        (utc(2026, 7, 1, 12, 59), False),  # 08:59 EDT, 07:59 CDT
        (utc(2026, 7, 1, 13, 0), True),  # 09:00 EDT, 08:00 CDT
        (utc(2026, 7, 1, 23, 59), True),  # 19:59 EDT, 18:59 CDT
        (utc(2026, 7, 2, 0, 0), False),  # 20:00 EDT, 19:00 CDT
        (utc(2026, 12, 1, 13, 59), False),  # 08:59 EST, 07:59 CST
        (utc(2026, 12, 1, 14, 0), True),  # 09:00 EST, 08:00 CST
        (utc(2026, 12, 2, 0, 59), True),  # 19:59 EST, 18:59 CST
        (utc(2026, 12, 2, 1, 0), False),  # 20:00 EST, 19:00 CST
    ],
)
def test_two_zones_the_stricter_reading(instant: datetime, inside: bool) -> None:
    assert contains(DEFAULT, instant, [NY, CHI]) is inside
    assert contains(DEFAULT, instant, [CHI, NY]) is inside


def test_two_zones_open_at_eight_in_chicago_and_close_at_eight_in_new_york() -> None:
    opening = next_opening(DEFAULT, utc(2026, 7, 2, 0, 0), [NY, CHI])
    assert opening == utc(2026, 7, 2, 13, 0)
    assert opening.astimezone(CENTRAL).time() == time(8)
    assert opening.astimezone(EASTERN).time() == time(9)
    # across the spring-forward night
    opening = next_opening(DEFAULT, eastern(2026, 3, 7, 20, 0), [NY, CHI])
    assert opening == utc(2026, 3, 8, 13, 0)
    assert opening.astimezone(CENTRAL).time() == time(8)


@pytest.mark.parametrize(
    ("window", "zones"),
    [
        # exactly twelve hours apart, no DST: the windows touch but, end exclusive, never overlap
        (DEFAULT, ["America/Puerto_Rico", "Asia/Shanghai"]),
        (DEFAULT, [CHI, "America/Puerto_Rico", "Asia/Shanghai"]),
        # 14 (EDT) or 15 (EST) hours apart: more than the 8 hours of the window either way
        (OFFICE, [NY, "Pacific/Guam"]),
        (OFFICE, ["Pacific/Guam", NY]),
    ],
)
def test_far_apart_zones_never_open(window: Window, zones: list[str]) -> None:
    for start in (utc(2026, 1, 15, 0, 0), utc(2026, 7, 15, 9, 30), utc(2026, 11, 1, 4, 0)):
        assert next_opening(window, start, zones) is None
        assert next_opening(window, start, zones, horizon=timedelta(days=400)) is None


def test_new_york_and_guam_do_overlap_in_the_evening() -> None:
    # 08:00 in Guam (UTC+10) is 18:00 EDT / 17:00 EST the day before: 08:00-20:00 overlaps.
    opening = next_opening(DEFAULT, utc(2026, 7, 1, 0, 0), [NY, "Pacific/Guam"])
    assert opening == utc(2026, 7, 1, 22, 0)
    assert opening.astimezone(EASTERN).time() == time(18)
    opening = next_opening(DEFAULT, eastern(2026, 11, 30, 21, 0), [NY, "Pacific/Guam"])
    assert opening == utc(2026, 12, 1, 22, 0)
    assert opening.astimezone(EASTERN).time() == time(17)


# --- DST edge cases for windows outside the legal hours (the module does not assume them) -----


def test_a_start_in_the_spring_forward_gap_opens_at_the_end_of_the_gap() -> None:
    # 02:30 does not exist on 2026-03-08 in New York; the clock reads 03:00 EDT at 07:00 UTC.
    window = Window(time(2, 30), time(5))
    assert next_opening(window, eastern(2026, 3, 8, 0, 0), [NY]) == utc(2026, 3, 8, 7, 0)
    assert next_opening(window, eastern(2026, 3, 9, 0, 0), [NY]) == utc(2026, 3, 9, 6, 30)
    window = Window(time(2, 30), time(2, 45))  # wholly inside the gap: skipped that night
    assert next_opening(window, eastern(2026, 3, 8, 0, 0), [NY]) == utc(2026, 3, 9, 6, 30)


def test_a_start_repeated_by_the_fall_back_opens_at_both_readings() -> None:
    window = Window(time(1, 30), time(1, 45))
    assert next_opening(window, utc(2026, 11, 1, 5, 0), [NY]) == utc(2026, 11, 1, 5, 30)  # EDT
    assert next_opening(window, utc(2026, 11, 1, 5, 50), [NY]) == utc(2026, 11, 1, 6, 30)  # EST


def test_a_fall_back_into_the_window_opens_it_at_the_change() -> None:
    # 01:59:59 EDT is past 01:30; one second later the clock reads 01:00 EST, inside again.
    window = Window(time(0, 30), time(1, 30))
    assert not contains(window, utc(2026, 11, 1, 5, 59, 59), [NY])
    assert next_opening(window, utc(2026, 11, 1, 5, 45), [NY]) == utc(2026, 11, 1, 6, 0)


# --- errors -------------------------------------------------------------------------------


def test_errors() -> None:
    naive = datetime(2026, 3, 9, 12, 30)
    with pytest.raises(ValueError, match="naive"):
        contains(DEFAULT, naive, [NY])
    with pytest.raises(ValueError, match="naive"):
        next_opening(DEFAULT, naive, [NY])
    with pytest.raises(ValueError):
        contains(DEFAULT, utc(2026, 3, 9, 12, 30), [])
    with pytest.raises(ValueError):
        next_opening(DEFAULT, utc(2026, 3, 9, 12, 30), ())
    with pytest.raises(ValueError, match="unknown time zone"):
        contains(DEFAULT, utc(2026, 3, 9, 12, 30), ["America/Nowhere"])
    with pytest.raises(TypeError):
        contains(DEFAULT, utc(2026, 3, 9, 12, 30), NY)


# --- a travelled clock ------------------------------------------------------------------------


@time_machine.travel(utc(2026, 3, 9, 12, 30), tick=False)
def test_now_on_the_monday_after_spring_forward() -> None:
    now = datetime.now(UTC)
    assert now == utc(2026, 3, 9, 12, 30)  # 08:30 EDT
    assert contains(DEFAULT, now, [NY])
    assert next_opening(DEFAULT, now, [NY]) == now
    assert not contains(DEFAULT, now, [NY, CHI])  # 07:30 CDT
    assert next_opening(DEFAULT, now, [NY, CHI]) == utc(2026, 3, 9, 13, 0)


def test_now_under_a_travelled_clock_on_saturday_evenings() -> None:
    for saturday_evening, sunday_morning in (
        (eastern(2026, 3, 7, 20, 0), utc(2026, 3, 8, 12, 0)),
        (eastern(2026, 10, 31, 20, 0), utc(2026, 11, 1, 13, 0)),
    ):
        with time_machine.travel(saturday_evening, tick=False):
            now = datetime.now(UTC)
            assert not contains(DEFAULT, now, [NY])
            assert next_opening(DEFAULT, now, [NY]) == sunday_morning


# --- properties ---------------------------------------------------------------------------

US_ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
]
instants = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2027, 12, 31, 23, 59, 59),
    timezones=st.sampled_from([UTC, *map(ZoneInfo, US_ZONES)]),
)
zone_sets = st.lists(st.sampled_from(US_ZONES), min_size=1, max_size=3, unique=True)


@st.composite
def legal_windows(draw: st.DrawFn) -> Window:
    start = draw(st.integers(8 * 60, 21 * 60 - 1))
    end = draw(st.integers(start + 1, 21 * 60))
    return Window(time(*divmod(start, 60)), time(*divmod(end, 60)))


@settings(max_examples=300)
@given(legal_windows(), instants, zone_sets)
def test_next_opening_properties(window: Window, instant: datetime, zones: list[str]) -> None:
    opening = next_opening(window, instant, zones)
    if contains(window, instant, zones):  # (c)
        assert opening == instant
    if opening is None:
        return
    assert opening.tzinfo is UTC
    assert opening >= instant  # (a)
    assert contains(window, opening, zones)
    if opening != instant:  # (b) minimal
        assert not contains(window, opening - timedelta(seconds=1), zones)
    for zone in zones:  # (d) never outside the legal hours anywhere
        assert time(8) <= opening.astimezone(ZoneInfo(zone)).time() < time(21)


def _first_minute_inside(
    window: Window, instant: datetime, zones: list[str], horizon: timedelta
) -> datetime | None:
    """Brute force: ``instant``, then every whole minute after it, within ``horizon``."""
    first = instant.astimezone(UTC)
    if contains(window, first, zones):
        return first
    candidate = first.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while candidate <= first + horizon:
        if contains(window, candidate, zones):
            return candidate
        candidate += timedelta(minutes=1)
    return None


@settings(max_examples=60, deadline=None)
@given(legal_windows(), instants, zone_sets)
def test_next_opening_matches_a_minute_by_minute_search(
    window: Window, instant: datetime, zones: list[str]
) -> None:
    horizon = timedelta(days=2)
    expected = _first_minute_inside(window, instant, zones, horizon)
    assert next_opening(window, instant, zones, horizon=horizon) == expected


@given(legal_windows(), instants, zone_sets)
def test_contains_is_the_conjunction_of_single_zones(
    window: Window, instant: datetime, zones: list[str]
) -> None:
    assert contains(window, instant, zones) == all(contains(window, instant, [z]) for z in zones)


# --- area codes that span two zones -------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "local"),
    [
        # 08:05 in Central is 07:05 in the Nebraska panhandle (Mountain), also area code 308
        ("+13085550100", datetime(2026, 1, 14, 8, 5, tzinfo=ZoneInfo(CHI))),
        # 08:05 in Tallahassee is 07:05 in Pensacola, both area code 850
        ("+18505550100", datetime(2026, 7, 1, 8, 5, tzinfo=ZoneInfo(NY))),
        # and at 19:30 in Pensacola it is already 20:30 in Tallahassee
        ("+18505550100", datetime(2026, 7, 1, 19, 30, tzinfo=ZoneInfo(CHI))),
        ("+18075550100", datetime(2026, 7, 1, 8, 30, tzinfo=ZoneInfo("America/Toronto"))),
    ],
)  # fmt: skip
def test_a_split_area_code_is_texted_only_when_the_window_is_open_in_all_its_zones(
    number, local
) -> None:
    zones = zones_for(None, phone.time_zones(number), NY)
    assert len(zones) >= 2
    assert any(contains(DEFAULT, local, [zone]) for zone in zones)  # open in one of them
    assert not contains(DEFAULT, local, zones)
    opening = next_opening(DEFAULT, local, zones)
    assert opening is not None and all(contains(DEFAULT, opening, [z]) for z in zones)


def test_a_split_area_code_with_a_zone_on_the_contact_uses_the_contact_zone() -> None:
    assert zones_for("America/Denver", phone.time_zones("+13085550100"), NY) == ("America/Denver",)
