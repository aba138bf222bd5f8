"""Dispatch outcomes and what a pass prints of them (pure: no database)."""

from __future__ import annotations

import pytest

from gateway.core.domain import SkipReason
from gateway.services.dispatch import NOTHING, Outcome, PassSummary, Result


@pytest.mark.parametrize(
    ("result", "text", "outcome", "reason"),
    [
        (Result(Outcome.SENT), "sent", Outcome.SENT, ""),
        (NOTHING, "none", Outcome.NONE, ""),
        (Result(Outcome.SKIPPED, SkipReason.OPTED_OUT), "skipped:opted_out", Outcome.SKIPPED,
         "opted_out"),
        (Result(Outcome.FAILED, 21610), "failed:21610", Outcome.FAILED, "21610"),
        (Result(Outcome.FAILED, "render"), "failed:render", Outcome.FAILED, "render"),
        (Result(Outcome.RETRYING, 503), "retrying:503", Outcome.RETRYING, "503"),
        (Result(Outcome.PACED), "paced", Outcome.PACED, ""),
    ],
)  # fmt: skip
def test_a_result_reads_as_its_outcome_and_reason(result, text, outcome, reason):
    assert result == text
    assert (result.outcome, result.reason) == (outcome, reason)


def test_every_outcome_but_none_and_skipped_has_a_counter():
    names = set(PassSummary.__dataclass_fields__)
    assert {o.value for o in Outcome} - names == {"none"}
    assert "skipped" in names and "claimed" in names


def test_a_summary_counts_results_and_prints_as_before():
    summary = PassSummary(claimed=10)
    for result in [
        Result(Outcome.SENT), Result(Outcome.SENT), NOTHING,
        Result(Outcome.SKIPPED, SkipReason.OPTED_OUT), Result(Outcome.SKIPPED, SkipReason.EXPIRED),
        Result(Outcome.SKIPPED, SkipReason.OPTED_OUT), Result(Outcome.DEFERRED),
        Result(Outcome.RETRYING, "network"), Result(Outcome.FAILED, 21211),
        Result(Outcome.UNCERTAIN), Result(Outcome.PACED),
    ]:  # fmt: skip
        summary.add(result)
    assert summary.skipped == {"opted_out": 2, "expired": 1}
    assert str(summary) == (
        "claimed 10: sent 2, skipped 3 (expired 1, opted_out 2), deferred 1, retrying 1, "
        "failed 1, uncertain 1, paced 1"
    )
    other = PassSummary(claimed=1)
    other.add(Result(Outcome.SKIPPED, SkipReason.EXPIRED))
    summary.merge(other)
    assert str(summary) == (
        "claimed 11: sent 2, skipped 4 (expired 2, opted_out 2), deferred 1, retrying 1, "
        "failed 1, uncertain 1, paced 1"
    )


def test_a_quiet_summary_leaves_out_what_did_not_happen():
    summary = PassSummary(claimed=1)
    summary.add(Result(Outcome.SENT))
    assert str(summary) == "claimed 1: sent 1, skipped 0, deferred 0, retrying 0, failed 0"
