"""A final failure stands: no later status (``read``, ``delivered``, a late ``sent``) moves a
message out of ``failed``, ``undelivered`` or ``canceled``, whether it comes in a signed status
callback or from reconciliation fetching the message from Twilio.

Twilio's message statuses (https://www.twilio.com/docs/messaging/api/message-resource#message-status-values):
``queued``/``accepted``/``scheduled`` -> ``sending`` -> ``sent`` -> one final of ``delivered``,
``undelivered``, ``failed``, ``canceled`` (``partially_delivered`` for some channels); ``read``
comes after ``delivered`` on channels with read receipts. A message that was never delivered
cannot be read, and ``delivered`` after ``undelivered`` is not a sequence Twilio produces: such a
callback is out of its place (a retry, a replay), and the first final status stands.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from conftest import get_database_of
from gateway.services import delivery
from gateway.services.delivery import PROVIDER_RANK, UNREACHED, moves
from gateway.store.models import OutboundMessage


def callback(twilio, sid, status, **extra):
    return twilio.status(sid, status, **extra)


def stored(app, sid) -> OutboundMessage:
    with get_database_of(app).sessions() as session:
        return session.scalars(
            select(OutboundMessage).where(OutboundMessage.provider_sid == sid)
        ).one()


# callbacks in the order they arrive -> (the reminder's status, the provider status recorded)
ORDERS = [
    (["failed", "read"], ("failed", "failed")),
    (["failed", "delivered"], ("failed", "failed")),
    (["failed", "delivered", "read"], ("failed", "failed")),
    (["undelivered", "read"], ("undelivered", "undelivered")),
    (["undelivered", "delivered"], ("undelivered", "undelivered")),
    (["undelivered", "delivered", "read"], ("undelivered", "undelivered")),
    (["sent", "undelivered", "read", "sent"], ("undelivered", "undelivered")),
    (["canceled", "read"], ("failed", "canceled")),
    (["failed", "undelivered"], ("failed", "failed")),  # the first final status stands
    (["delivered", "failed"], ("delivered", "delivered")),
    (["delivered", "undelivered"], ("delivered", "delivered")),
    (["delivered", "read"], ("delivered", "read")),  # read receipts follow a delivery
    (["sent", "read"], ("delivered", "read")),  # the delivered callback was lost
    (["read", "delivered"], ("delivered", "read")),
    (["read", "failed"], ("delivered", "read")),
    (["sending", "sent", "delivered", "read"], ("delivered", "read")),
]


@pytest.mark.parametrize(("order", "expected"), ORDERS)
def test_a_final_failure_stands_through_the_signed_callback(
    app, twilio, api, sent, order, expected
):
    for status in order:
        assert callback(twilio, sent, status).status_code == 204
    assert api.reminder()["status"] == expected[0]
    assert stored(app, sent).provider_status == expected[1]


def test_a_late_read_keeps_the_failures_error_code_and_completion(app, twilio, api, sent):
    callback(twilio, sent, "undelivered", ErrorCode="30003")  # unreachable handset
    before = stored(app, sent)
    callback(twilio, sent, "read")
    after = stored(app, sent)
    assert (after.status, after.error_code) == ("undelivered", 30003)
    assert after.completed_at == before.completed_at
    assert api.reminder()["error_code"] == 30003


def test_a_status_reconciliation_fetched_does_not_undo_a_failure(app, twilio, sent):
    """Reconciliation applies what it fetched with ``apply_status``: a callback that arrived
    meanwhile with a failure is not overridden by the fetched ``read``/``delivered``."""
    callback(twilio, sent, "failed", ErrorCode="30008")
    settings = app.extensions["gateway.settings"]
    with get_database_of(app).sessions() as session:
        for fetched in ("read", "delivered", "sent"):
            outcome = delivery.apply_status(session, settings, sent, fetched)
            assert outcome is delivery.Outcome.STALE
    message = stored(app, sent)
    assert (message.status, message.provider_status, message.error_code) == (
        "failed",
        "failed",
        30008,
    )


# --- the rule itself (pure) ---------------------------------------------------------------------

STATUSES = st.sampled_from(sorted(PROVIDER_RANK))


def replay(statuses: list[str]) -> str | None:
    seen = None
    for status in statuses:
        if moves(seen, status):
            seen = status
    return seen


@given(st.lists(STATUSES, max_size=12))
def test_any_order_of_callbacks_never_leaves_a_failure_and_never_moves_back(statuses):
    seen: str | None = None
    for status in statuses:
        after = status if moves(seen, status) else seen
        assert PROVIDER_RANK.get(after or "", 0) >= PROVIDER_RANK.get(seen or "", 0)
        if seen in UNREACHED:
            assert after == seen
        seen = after


@given(st.lists(STATUSES, max_size=12), st.sampled_from(sorted(UNREACHED)), st.lists(STATUSES))
def test_the_first_final_failure_is_the_last_word(before, failure, after):
    """Once a failure is recorded over non-final statuses, whatever follows changes nothing."""
    before = [s for s in before if PROVIDER_RANK[s] < PROVIDER_RANK["delivered"]]
    assert replay(before + [failure] + after) == failure
