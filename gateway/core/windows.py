"""The local-time sending window: when an automated text may reach a recipient. Pure, zoneinfo only.

Florida, Oklahoma and Maryland allow automated texts between 08:00 and 20:00 in the recipient's
local time; a practice may set a window per category, never wider than 08:00-21:00 (config
validates that).  A :class:`Window` is a pair of local wall-clock times, start inclusive, end
exclusive, and never wraps past midnight.

When a recipient may be in several zones (a number whose prefix spans two), the stricter reading
applies: an instant is inside only when it is inside the window in *every* zone
(:func:`contains`).  :func:`next_opening` finds the earliest such instant at or after a given
one, and :func:`zones_for` picks the zones to respect for a contact.

Daylight saving time: a wall-clock time is read in each zone with :mod:`zoneinfo`, so 08:00 is
08:00 whether the zone is on standard or summer time.  :func:`next_opening` works for any window,
not only for 08:00-21:00: a start that falls in a spring-forward gap (02:30 on the night clocks go
from 02:00 to 03:00) opens at the end of the gap, a start repeated by a fall-back opens at its
first reading (and again at its second, if the window closed in between), and a fall-back that
turns the clock back into the window opens it at the moment of the change.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TypeGuard
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Window", "contains", "is_zone", "next_opening", "zones_for"]

_DAY = timedelta(days=1)
#: offsets are sampled this often to find the changes between them (a zone never changes its
#: offset twice within an hour)
_SAMPLE = timedelta(hours=1)


@dataclass(frozen=True)
class Window:
    """Local wall-clock sending hours: ``start`` inclusive, ``end`` exclusive, both naive."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("a window is in local wall-clock time: give naive times")
        if not self.start < self.end:
            raise ValueError(f"the start must be before the end: {self}")

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(t: time) -> str:
    return t.isoformat("minutes") if not (t.second or t.microsecond) else t.isoformat()


def contains(window: Window, instant: datetime, zones: Sequence[str]) -> bool:
    """Whether ``instant`` (aware) is inside ``window`` in every one of ``zones`` (IANA names).

    Raises ValueError for a naive instant, no zones or an unknown zone name.
    """
    _check_instant(instant)
    return _inside_all(window, instant, _resolve(zones))


def next_opening(
    window: Window,
    instant: datetime,
    zones: Sequence[str],
    *,
    horizon: timedelta = timedelta(days=14),
) -> datetime | None:
    """The earliest instant (aware, UTC) at or after ``instant`` inside the window in every zone.

    ``instant`` itself, as UTC, when it is already inside; None when there is no such instant
    within ``horizon`` of it (zones so far apart that their windows never overlap).  The result
    is either ``instant`` or a moment at which the window opens in one of the zones, so the
    earliest one is found by checking those candidates in order.
    """
    _check_instant(instant)
    if horizon < timedelta(0):
        raise ValueError("the horizon must not be negative")
    zone_infos = _resolve(zones)
    first = instant.astimezone(UTC)
    if _inside_all(window, first, zone_infos):  # the usual case: open now
        return first
    last = first + horizon
    candidates = {first}
    for zone in zone_infos:
        candidates.update(_openings(window, zone, first, last))
    for candidate in sorted(c for c in candidates if first <= c <= last):
        if _inside_all(window, candidate, zone_infos):
            return candidate
    return None


def zones_for(
    contact_zone: str | None, number_zones: Sequence[str], practice_zone: str
) -> tuple[str, ...]:
    """The zones to respect for a recipient, most specific knowledge first.

    The contact's own zone when set and a known IANA name; else the known zones of the number's
    prefix (in order, without repeats) when there are any; else the practice's zone.
    """
    if is_zone(contact_zone):
        return (contact_zone,)
    known = tuple(dict.fromkeys(z for z in number_zones if _is_zone(z)))
    return known or (practice_zone,)


def is_zone(name: str | None) -> TypeGuard[str]:
    """Whether ``name`` is a known IANA zone name (``zones_for`` then takes a contact's zone as
    it is, and needs no other)."""
    return bool(name) and _is_zone(name)


# --- helpers ------------------------------------------------------------------------------


def _check_instant(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"a naive datetime is ambiguous, give an aware one: {instant!r}")


def _resolve(zones: Sequence[str]) -> tuple[ZoneInfo, ...]:
    if isinstance(zones, str):
        raise TypeError(f"zones must be a sequence of zone names, not the string {zones!r}")
    if not zones:
        raise ValueError("at least one time zone is needed")
    return tuple(_zone(name) for name in zones)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _is_zone(name: str) -> bool:
    try:
        _zone(name)
    except ValueError:
        return False
    return True


def _inside_all(window: Window, instant: datetime, zones: Sequence[ZoneInfo]) -> bool:
    return all(window.start <= instant.astimezone(z).time() < window.end for z in zones)


def _openings(
    window: Window, zone: ZoneInfo, first: datetime, last: datetime
) -> Iterator[datetime]:
    """Every instant near [first, last] at which local time in ``zone`` may enter the window.

    Between offset changes local time runs forward continuously, so it enters the window only
    by reaching ``start`` on some date, or by jumping into it when the offset changes.
    """
    day = first.astimezone(zone).date() - _DAY
    end_day = last.astimezone(zone).date() + _DAY
    while day <= end_day:
        yield from _wall_instants(day, window.start, zone)
        day += _DAY
    yield from _offset_changes(zone, first - _DAY, last + _DAY)


def _wall_instants(day: date, wall: time, zone: ZoneInfo) -> tuple[datetime, ...]:
    """The UTC instants at which the clock in ``zone`` reads ``wall`` on ``day``.

    One normally; two when a fall-back repeats that wall time; when a spring-forward skips it,
    the end of the gap (the first instant the day's clock is past it), never a time in the gap
    misread with one of the two offsets around it.
    """
    naive = datetime.combine(day, wall)
    readings = {naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    real = tuple(sorted(u for u in readings if _wall(u, zone) == naive))
    if real:
        return real
    # In a gap zoneinfo reads fold=1 with the offset after the change, which gives an instant
    # before it, and fold=0 with the offset before, an instant after it: the change lies between.
    before, after = sorted(readings)
    return (_change_between(zone, before, after),)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _offset_changes(zone: ZoneInfo, first: datetime, last: datetime) -> Iterator[datetime]:
    """The instants in (first, last] at which ``zone`` changes its UTC offset."""
    day = first.astimezone(UTC).date()
    while day <= last.astimezone(UTC).date():
        for change in _day_changes(zone, day):
            if first < change <= last:
                yield change
        day += _DAY


@lru_cache(maxsize=4096)
def _day_changes(zone: ZoneInfo, day: date) -> tuple[datetime, ...]:
    """The instants in (day 00:00 UTC, next day 00:00 UTC] at which ``zone`` changes its UTC
    offset (kept: every recipient of a zone shares them, and the next openings ask for weeks)."""
    previous = datetime.combine(day, time(0), UTC)
    previous_offset, last = previous.astimezone(zone).utcoffset(), previous + _DAY
    changes = []
    while previous < last:
        current = previous + _SAMPLE
        current_offset = current.astimezone(zone).utcoffset()
        if current_offset != previous_offset:
            changes.append(_change_between(zone, previous, current))
        previous, previous_offset = current, current_offset
    return tuple(changes)


def _change_between(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The offset change in (before, after]: the first whole second with ``after``'s offset.

    tzdata records changes in whole seconds; there is exactly one change in the interval.
    """
    target = after.astimezone(zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:  # invariant: offset at low differs from target, at high equals it
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
