"""Pure rules of delivery: the send-time policy, retry backoff, carrier error reactions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core import carrier_errors, policy, retry
from gateway.core.domain import ConsentStatus, SkipReason, Unreachable

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def facts(**overrides):
    values = {"expires_at": None, "consent_status": ConsentStatus.IMPLIED, "consent_allows": True}
    values.update(overrides)
    return policy.Facts(**values)


@pytest.mark.parametrize(
    ("overrides", "decision"),
    [
        ({}, policy.Send()),
        ({"expires_at": NOW + timedelta(seconds=1)}, policy.Send()),
        ({"expires_at": NOW}, policy.Skip(SkipReason.EXPIRED)),
        ({"expires_at": NOW - timedelta(days=1)}, policy.Skip(SkipReason.EXPIRED)),
        ({"consent_status": ConsentStatus.OPTED_OUT, "consent_allows": False},
         policy.Skip(SkipReason.OPTED_OUT)),
        ({"consent_status": ConsentStatus.NONE, "consent_allows": False},
         policy.Skip(SkipReason.NO_CONSENT)),
        ({"consent_status": ConsentStatus.PENDING, "consent_allows": False},
         policy.Skip(SkipReason.NO_CONSENT)),
        ({"unreachable": Unreachable.NOT_MOBILE}, policy.Skip(SkipReason.NOT_MOBILE)),
        ({"unreachable": Unreachable.INVALID_NUMBER}, policy.Skip(SkipReason.INVALID_NUMBER)),
        ({"has_sender": False}, policy.Skip(SkipReason.NO_SENDER)),
        # expiry is reported first: it is final whatever else changes
        ({"expires_at": NOW, "consent_status": ConsentStatus.OPTED_OUT, "consent_allows": False},
         policy.Skip(SkipReason.EXPIRED)),
    ],
)  # fmt: skip
def test_policy_table(overrides, decision):
    assert policy.decide(facts(**overrides), NOW) == decision


@given(
    allows=st.booleans(),
    status=st.sampled_from(ConsentStatus),
    expires_in=st.one_of(st.none(), st.integers(-(10**6), 10**6)),
    unreachable=st.one_of(st.none(), st.sampled_from(Unreachable)),
)
def test_policy_never_sends_without_consent_or_after_expiry(
    allows, status, expires_in, unreachable
):
    expires_at = None if expires_in is None else NOW + timedelta(seconds=expires_in)
    decision = policy.decide(
        facts(consent_status=status, consent_allows=allows, expires_at=expires_at,
              unreachable=unreachable), NOW,
    )  # fmt: skip
    if isinstance(decision, policy.Send):
        assert allows
        assert expires_at is None or expires_at > NOW
        assert unreachable is None


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 15, 30), (2, 30, 60), (3, 60, 120), (8, 1800, 3600), (40, 1800, 3600)],
)
def test_backoff_doubles_with_jitter_up_to_a_cap(attempt, low, high):
    delays = {retry.backoff(attempt, rng=random.Random(seed)).total_seconds() for seed in range(50)}
    assert all(low <= d <= high for d in delays)
    assert len(delays) > 40  # jittered, so failures that came together do not return together


def test_backoff_honours_retry_after():
    assert retry.backoff(1, retry_after=600, rng=random.Random(1)) == timedelta(seconds=600)
    assert retry.backoff(1, retry_after=1, rng=random.Random(1)) >= timedelta(seconds=15)


def test_backoff_rejects_attempt_zero():
    with pytest.raises(ValueError):
        retry.backoff(0)


def test_gives_up_after_the_budget():
    assert not retry.gives_up(retry.MAX_ATTEMPTS - 1)
    assert retry.gives_up(retry.MAX_ATTEMPTS)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (21610, (carrier_errors.Reaction.OPT_OUT, None)),
        (21211, (carrier_errors.Reaction.MARK_UNREACHABLE, Unreachable.INVALID_NUMBER)),
        (21614, (carrier_errors.Reaction.MARK_UNREACHABLE, Unreachable.NOT_MOBILE)),
        (30006, (carrier_errors.Reaction.MARK_UNREACHABLE, Unreachable.NOT_MOBILE)),
        (30005, (carrier_errors.Reaction.MARK_UNREACHABLE, Unreachable.INVALID_NUMBER)),
        (30003, None),  # unreachable handset: transient, nothing to mark
        (20429, None),
        (None, None),
    ],
)
def test_carrier_error_reactions(code, expected):
    assert carrier_errors.reaction_to(code) == expected
