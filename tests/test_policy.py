"""The send-time policy and the recipient rules: tables and properties (pure, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.core import policy, recipients, windows
from gateway.core.domain import Category, ConsentStatus, SkipReason, Unreachable

NY = "America/New_York"
# Monday 2 March 2026, 10:00 in New York (EST, UTC-5)
MON = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
OUT = "outside the sending window 08:00-20:00 local time"
OUT_9_5 = "outside the sending window 09:00-17:00 local time"
DAILY = policy.Cap(1, timedelta(hours=24))
WEEKLY = policy.Cap(3, timedelta(days=7))
# the consent and category that put caps on a text (``policy.caps``):
#: a care text under the FCC healthcare exemption (implied consent): DAILY and WEEKLY
EXEMPT = {"consent_status": ConsentStatus.IMPLIED}
#: a care text with express consent: no caps, no length limit
EXPRESS = {"consent_status": ConsentStatus.OPTED_IN}
#: marketing, at most one a day: DAILY alone
ONE_A_DAY = {"category": Category.MARKETING, "consent_status": ConsentStatus.OPTED_IN,
             "limits": policy.Limits(marketing_per_day=1)}  # fmt: skip
#: marketing at the default limit: three in any 24 hours
MARKETING = {"category": Category.MARKETING, "consent_status": ConsentStatus.OPTED_IN}


Send, Defer, Skip = policy.Send, policy.Defer, policy.Skip


def hours(n):
    return timedelta(hours=n)


def days(n):
    return timedelta(days=n)


def facts(**overrides):
    values = {"expires_at": None, "consent_status": ConsentStatus.IMPLIED, "consent_allows": True,
              "zones": (NY,)}  # fmt: skip
    values.update(overrides)
    return policy.Facts(**values)


def ny(year, month, day, hour, minute=0):
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(NY)).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "overrides", "decision"),
    [
        (MON, {}, Send()),
        # before 8 am: deferred to 8 am local
        (ny(2026, 3, 2, 7, 59), {}, Defer(ny(2026, 3, 2, 8), OUT)),
        # 8 pm is closed (the window's end is exclusive): tomorrow 8 am
        (ny(2026, 3, 2, 20), {}, Defer(ny(2026, 3, 3, 8), OUT)),
        # ... unless the reminder expires first
        (ny(2026, 3, 2, 21), {"expires_at": ny(2026, 3, 3, 7)}, Skip(SkipReason.EXPIRED)),
        (ny(2026, 3, 2, 21), {"expires_at": ny(2026, 3, 3, 8)}, Skip(SkipReason.EXPIRED)),
        (ny(2026, 3, 2, 21), {"expires_at": ny(2026, 3, 3, 8, 1)}, Defer(ny(2026, 3, 3, 8), OUT)),
        # a practice's narrower window for the category
        (ny(2026, 3, 2, 18), {"window": (time(9), time(17))}, Defer(ny(2026, 3, 3, 9), OUT_9_5)),
        # a number in Chicago: 8:30 in New York is 7:30 there
        (ny(2026, 3, 2, 8, 30), {"zones": ("America/Chicago",)}, Defer(ny(2026, 3, 2, 9), OUT)),
        # caps: one a day (rolling) for care texts sent without express consent
        (MON, {**EXEMPT, "recent_sends": (MON - hours(2),)},
         Defer(MON + hours(22), "frequency cap")),
        # the cap frees at 8 am tomorrow, but the window holds it until... 8 am: same moment
        (ny(2026, 3, 2, 19), {**ONE_A_DAY, "recent_sends": (ny(2026, 3, 2, 9),)},
         Defer(ny(2026, 3, 3, 9), "frequency cap")),
        # three this week: the oldest leaves the week first
        (MON, {**EXEMPT, "recent_sends": (
            MON - days(6), MON - days(4), MON - days(2))},
         Defer(MON + days(1), "frequency cap")),
        # over the cap with no slot before expiry
        (MON, {**ONE_A_DAY, "recent_sends": (MON - hours(1),),
                       "expires_at": MON + hours(5)}, Skip(SkipReason.FREQUENCY_CAP)),
        # sends of more than a period ago do not count
        (MON, {**ONE_A_DAY, "recent_sends": (MON - hours(24),)}, Send()),
        # the exemption's limits
        (MON, {**EXEMPT, "body_chars": 160}, Send()),
        (MON, {**EXEMPT, "body_chars": 161}, Skip(SkipReason.TOO_LONG)),
        (MON, {**EXEMPT, "body_chars": 90, "body_segments": 2},
         Skip(SkipReason.TOO_LONG)),
        (MON, {**EXPRESS, "body_chars": 300, "body_segments": 2}, Send()),
        # the recipient's record and consent come before time
        (ny(2026, 3, 2, 22), {"recipient_block": SkipReason.DO_NOT_TEXT},
         Skip(SkipReason.DO_NOT_TEXT)),
        (ny(2026, 3, 2, 22), {"consent_status": ConsentStatus.OPTED_OUT, "consent_allows": False},
         Skip(SkipReason.OPTED_OUT)),
        (MON, {"expires_at": MON}, Skip(SkipReason.EXPIRED)),
    ],
)  # fmt: skip
def test_policy_table(now, overrides, decision):
    assert policy.decide(facts(**overrides), now) == decision


# --- the rules that pick caps and limits from the category and the consent ----------------

PENDING_REQUEST = {"category": Category.MARKETING, "consent_status": ConsentStatus.PENDING,
                   "consent_allows": False, "confirms_opt_in": True}  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "caps"),
    [
        (EXEMPT, (DAILY, WEEKLY)),
        ({**EXEMPT, "limits": policy.Limits(transactional_per_day=2, transactional_per_week=5)},
         (policy.Cap(2, hours(24)), policy.Cap(5, days(7)))),
        (EXPRESS, ()),
        (MARKETING, (policy.Cap(3, hours(24)),)),
        (ONE_A_DAY, (DAILY,)),
        # the marketing cap holds for the opt-in request as for any marketing text
        (PENDING_REQUEST, (policy.Cap(3, hours(24)),)),
        # a practice's care limits do not touch marketing, nor its marketing limit care texts
        ({**MARKETING, "limits": policy.Limits(transactional_per_day=9)},
         (policy.Cap(3, hours(24)),)),
        ({**EXEMPT, "limits": policy.Limits(marketing_per_day=9)}, (DAILY, WEEKLY)),
    ],
)  # fmt: skip
def test_caps_follow_the_category_and_the_consent(overrides, caps):
    assert policy.caps(facts(**overrides)) == caps


@pytest.mark.parametrize(
    ("overrides", "decision"),
    [
        # care texts under the exemption: one a day, three a week
        ({**EXEMPT, "recent_sends": (MON - hours(2),)}, Defer(MON + hours(22), "frequency cap")),
        ({**EXEMPT, "recent_sends": (MON - days(6), MON - days(4), MON - days(2))},
         Defer(MON + days(1), "frequency cap")),
        # ... or the practice's own limits
        ({**EXEMPT, "limits": policy.Limits(transactional_per_day=2),
          "recent_sends": (MON - hours(2),)}, Send()),
        ({**EXEMPT, "limits": policy.Limits(transactional_per_day=2),
          "recent_sends": (MON - hours(23), MON - hours(20))},
         Defer(MON + hours(1), "frequency cap")),
        # express consent: no cap on care texts
        ({**EXPRESS, "recent_sends": tuple(MON - hours(n) for n in range(1, 11))}, Send()),
        # marketing: three in any 24 hours, and no weekly cap
        ({**MARKETING, "recent_sends": (MON - hours(5), MON - hours(4))}, Send()),
        ({**MARKETING, "recent_sends": (MON - hours(23), MON - hours(22), MON - hours(20))},
         Defer(MON + hours(1), "frequency cap")),
        ({**MARKETING, "recent_sends": tuple(MON - days(n) for n in range(1, 7))}, Send()),
        ({**ONE_A_DAY, "recent_sends": (MON - hours(2),)}, Defer(MON + hours(22), "frequency cap")),
    ],
)  # fmt: skip
def test_frequency_caps(overrides, decision):
    assert policy.decide(facts(**overrides), MON) == decision


@pytest.mark.parametrize(
    ("overrides", "decision"),
    [
        # consent only implied: one GSM-7 segment of at most 160 characters
        ({**EXEMPT, "body_chars": 160, "body_segments": 1}, Send()),
        ({**EXEMPT, "body_chars": 161, "body_segments": 2}, Skip(SkipReason.TOO_LONG)),
        ({**EXEMPT, "body_chars": 70, "body_segments": 2}, Skip(SkipReason.TOO_LONG)),
        # express consent, or marketing (express written consent): no such limit
        ({**EXPRESS, "body_chars": 161, "body_segments": 2}, Send()),
        ({**MARKETING, "body_chars": 400, "body_segments": 3}, Send()),
        # too long is final: before the window and the caps
        ({**EXEMPT, "body_chars": 161, "recent_sends": (MON - hours(1),)},
         Skip(SkipReason.TOO_LONG)),
        # ... but after expiry, the recipient, consent, suppression and the sender
        ({**EXEMPT, "body_chars": 161, "expires_at": MON}, Skip(SkipReason.EXPIRED)),
        ({**EXEMPT, "body_chars": 161, "recipient_block": SkipReason.NO_GUARDIAN},
         Skip(SkipReason.NO_GUARDIAN)),
        ({**EXEMPT, "body_chars": 161, "suppressed": True}, Skip(SkipReason.SUPPRESSED)),
        ({**EXEMPT, "body_chars": 161, "has_sender": False}, Skip(SkipReason.NO_SENDER)),
        # the suppression list matters only while no consent event exists
        ({**EXPRESS, "suppressed": True}, Send()),
        ({**MARKETING, "suppressed": True}, Send()),
    ],
)  # fmt: skip
def test_the_exemptions_limits(overrides, decision):
    assert policy.decide(facts(**overrides), MON) == decision


@pytest.mark.parametrize(
    ("overrides", "limit"),
    [(EXEMPT, 160), (EXPRESS, None), (MARKETING, None), (PENDING_REQUEST, None),
     ({"consent_status": ConsentStatus.OPTED_OUT, "consent_allows": False}, None)],
)  # fmt: skip
def test_the_longest_text_the_policy_lets_through(overrides, limit):
    assert policy.max_chars(facts(**overrides)) == limit


@pytest.mark.parametrize(
    ("now", "overrides", "decision"),
    [
        # the request for a double opt-in's YES goes to the number whose opt-in is pending
        (MON, PENDING_REQUEST, Send()),
        # ... and to nobody else
        (MON, {**PENDING_REQUEST, "confirms_opt_in": False}, Skip(SkipReason.NO_CONSENT)),
        (MON, {**PENDING_REQUEST, "consent_status": ConsentStatus.NONE},
         Skip(SkipReason.NO_CONSENT)),
        (MON, {**PENDING_REQUEST, "consent_status": ConsentStatus.OPTED_OUT},
         Skip(SkipReason.OPTED_OUT)),
        # consent given meanwhile: it goes as any text would
        (MON, {**PENDING_REQUEST, "consent_status": ConsentStatus.OPTED_IN,
               "consent_allows": True}, Send()),
        # it lifts no other rule: expiry, the recipient, the window, the marketing cap
        (MON, {**PENDING_REQUEST, "expires_at": MON}, Skip(SkipReason.EXPIRED)),
        (MON, {**PENDING_REQUEST, "recipient_block": SkipReason.MINOR}, Skip(SkipReason.MINOR)),
        (MON, {**PENDING_REQUEST, "unreachable": Unreachable.NOT_MOBILE},
         Skip(SkipReason.NOT_MOBILE)),
        (MON, {**PENDING_REQUEST, "has_sender": False}, Skip(SkipReason.NO_SENDER)),
        (ny(2026, 3, 2, 21), PENDING_REQUEST, Defer(ny(2026, 3, 3, 8), OUT)),
        (MON, {**PENDING_REQUEST, "recent_sends": (MON - hours(23), MON - hours(22),
                                                   MON - hours(20))},
         Defer(MON + hours(1), "frequency cap")),
    ],
)  # fmt: skip
def test_the_pending_opt_in_request(now, overrides, decision):
    assert policy.decide(facts(**overrides), now) == decision


US_ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
            "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu"]  # fmt: skip
instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@st.composite
def scenario(draw):
    now = draw(instants)
    start = draw(st.integers(8 * 60, 20 * 60))
    end = draw(st.integers(start + 30, 21 * 60))
    zones = tuple(draw(st.lists(st.sampled_from(US_ZONES), min_size=1, max_size=2, unique=True)))
    sends = tuple(now - timedelta(minutes=draw(st.integers(1, 7 * 24 * 60)))
                  for _ in range(draw(st.integers(0, 5))))  # fmt: skip
    # no caps, DAILY and WEEKLY, three in 24 hours
    capped = draw(st.sampled_from([EXPRESS, EXEMPT, MARKETING]))
    expires = draw(st.one_of(st.none(), st.integers(-3600, 10 * 24 * 3600)))
    return now, facts(
        **capped,
        window=(time(start // 60, start % 60), time(end // 60, end % 60)),
        zones=zones, recent_sends=sends,
        expires_at=None if expires is None else now + timedelta(seconds=expires),
        consent_allows=draw(st.booleans()),
    )  # fmt: skip


def sends_within(facts_, moment, cap):
    return sum(1 for s in facts_.recent_sends if moment - cap.period < s <= moment)


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_no_decision_breaks_a_rule(case):
    now, f = case
    decision = policy.decide(f, now)
    window = windows.Window(*f.window)
    if isinstance(decision, policy.Send | policy.Defer):
        moment = now if isinstance(decision, policy.Send) else decision.until
        assert f.consent_allows
        assert windows.contains(window, moment, f.zones)  # inside the window in every zone
        for zone in f.zones:
            local = moment.astimezone(ZoneInfo(zone)).time()
            assert time(8) <= local < time(21)
        for cap in policy.caps(f):
            assert sends_within(f, moment, cap) < cap.limit  # never above a cap
        assert f.expires_at is None or moment < f.expires_at  # never after expiry
    if isinstance(decision, policy.Defer):
        assert decision.until > now


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(scenario())
def test_a_deferral_is_the_earliest_allowed_minute(case):
    now, f = case
    decision = policy.decide(f, now)
    assume(isinstance(decision, policy.Defer))
    earlier = decision.until - timedelta(seconds=1)
    window = windows.Window(*f.window)
    allowed = windows.contains(window, earlier, f.zones) and all(
        sends_within(f, earlier, cap) < cap.limit for cap in policy.caps(f)
    )
    assert not allowed or earlier < now


# --- who receives it ---------------------------------------------------------------------

TODAY = date(2026, 3, 2)
P, R = recipients.Person, recipients.Recipient
CARE, PROMO = Category.TRANSACTIONAL, Category.MARKETING
PATIENT, GUARDIAN, ALTERNATE = "+13055550123", "+13055550999", "+13055550777"


def born(years_ago, extra_days=0):
    return date(TODAY.year - years_ago, TODAY.month, TODAY.day) + timedelta(days=extra_days)


@pytest.mark.parametrize(
    ("person", "category", "minimum", "expected"),
    [
        (P(PATIENT), CARE, None, R(PATIENT)),
        (P(PATIENT, do_not_text=True), CARE, None,
         R(None, SkipReason.DO_NOT_TEXT)),
        (P(PATIENT, do_not_text=True, alternate_phone=ALTERNATE), CARE,
         None, R(ALTERNATE, role="alternate")),
        (P(PATIENT, date_of_birth=born(17), guardian_phone=GUARDIAN), CARE,
         16, R(GUARDIAN, role="guardian")),
        (P(PATIENT, date_of_birth=born(17)), CARE, 16,
         R(None, SkipReason.NO_GUARDIAN)),
        (P(PATIENT, date_of_birth=born(17), guardian_phone=GUARDIAN), PROMO,
         16, R(None, SkipReason.MINOR)),
        (P(PATIENT, date_of_birth=born(15), guardian_phone=GUARDIAN), CARE,
         16, R(None, SkipReason.UNDER_MINIMUM_AGE)),
        (P(PATIENT, date_of_birth=born(17), guardian_phone=GUARDIAN), CARE,
         18, R(None, SkipReason.UNDER_MINIMUM_AGE)),
        # the 18th birthday is today: an adult
        (P(PATIENT, date_of_birth=born(18), guardian_phone=GUARDIAN), PROMO,
         18, R(PATIENT)),
        # ... tomorrow: still a minor
        (P(PATIENT, date_of_birth=born(18, extra_days=1), guardian_phone=GUARDIAN),
         CARE, 16, R(GUARDIAN, role="guardian")),
    ],
)  # fmt: skip
def test_recipient_rules(person, category, minimum, expected):
    got = recipients.resolve(
        person, category, TODAY, minimum_age=minimum, guardian_required_under=18
    )
    assert got == expected


@given(st.dates(min_value=date(1920, 1, 1), max_value=TODAY))
def test_age_never_counts_a_birthday_early(birth):
    age = recipients.age_on(birth, TODAY)
    assert date(birth.year + age, 1, 1) <= TODAY
    try:
        birthday = birth.replace(year=birth.year + age)
    except ValueError:  # 29 February
        birthday = date(birth.year + age, 3, 1)
    assert birthday <= TODAY
