"""Staff review of inbound texts that may be revocations ("possible opt-outs").

A text that mentions stopping but is ambiguous ("I'll stop by at 3", "cancel my appointment",
"wrong number") is stored with ``review_status = open`` and changes no consent. The FCC counts a
revocation made by any reasonable means, so staff read each one and resolve it:

- ``opt_out``: it was a revocation. Every category the texted sender carries is revoked, as a
  STOP to that sender would have, with source ``staff``. The events occurred when the patient
  texted (``received_at``), not when staff read it: the ledger orders by time of occurrence, so a
  START the patient sent in between still wins, and reminders sent in between were sent in error.
- ``dismiss``: it was not. Nothing but the review fields changes.

Resolving is one transaction, guarded by ``review_status = open``: of two staff members resolving
the same item at once, one wins and the other gets ``AlreadyResolved``; consent events are only
written by the winner. No Flask here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gateway.config import Practice, Settings
from gateway.core import consent_rules
from gateway.core.domain import Action, Category, ReviewStatus, Source
from gateway.core.errors import Conflict, GatewayError, ValidationFailed
from gateway.core.keywords import Scope
from gateway.core.phone import mask
from gateway.services import consent
from gateway.store import reviews
from gateway.store.models import InboundMessage

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("gateway.review")  # the name operators filter on

#: resolution -> the review status it leaves
RESOLUTIONS = {"opt_out": ReviewStatus.OPTED_OUT, "dismiss": ReviewStatus.DISMISSED}
MAX_LIMIT = 500


class ReviewNotFound(GatewayError):
    """No review item with that id in the practice."""


class AlreadyResolved(Conflict):
    """The review item is no longer open: it has already been resolved."""


def open_items(
    session: Session, practice: str, *, limit: int = 100, before_id: int | None = None
) -> list[InboundMessage]:
    """Open items of one practice, oldest first (``received_at``, then ``id``).

    ``before_id`` is a keyset cursor: the id of the last item of the previous page (the API's
    ``next_before``); the page holds the items that follow that one in this order. An id that is
    no review item of the practice raises ``ReviewNotFound``; a cursor item resolved in the
    meantime still works.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be from 1 to {MAX_LIMIT}")
    after = None
    if before_id is not None:
        after = reviews.position(session, practice, before_id)
        if after is None:
            raise ReviewNotFound(f"no review item {before_id} in practice {practice!r}")
    return reviews.open_page(session, practice, limit, after)


def resolve(
    session: Session,
    settings: Settings,
    *,
    practice: str,
    inbound_id: int,
    resolution: str,
    staff: str,
    note: str | None,
    now: datetime,
) -> InboundMessage:
    """Resolve one open item; for ``opt_out`` record the revocation. Commits.

    Raises ``ValidationFailed`` (unknown resolution, no staff), ``ReviewNotFound`` (no such item
    in the practice, or a message that never needed review) and ``AlreadyResolved``.
    """
    status = RESOLUTIONS.get(resolution) if isinstance(resolution, str) else None
    if status is None:
        raise ValidationFailed({"resolution": "must be one of " + ", ".join(RESOLUTIONS)})
    if not staff or not staff.strip():
        raise ValidationFailed({"staff": "required: who resolved it"})
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    settings_practice = settings.practices.get(practice)

    message = reviews.fresh(session, inbound_id)
    if (
        settings_practice is None
        or message is None
        or message.practice != practice
        or message.review_status is None
    ):
        session.rollback()
        raise ReviewNotFound(f"no review item {inbound_id} in practice {practice!r}")

    if not reviews.claim(session, inbound_id, status, at=now, staff=staff, note=note):
        session.rollback()
        raise AlreadyResolved(f"review item {inbound_id} is already resolved")

    revoked: tuple[Category, ...] = ()
    if status is ReviewStatus.OPTED_OUT:
        revoked = _categories_of(settings_practice, message)
        evidence = {
            "inbound_message_id": message.id,
            "message_sid": message.message_sid,
            "body": message.body,
            "sender": message.sender,
            "staff": staff,
            "note": note,
            "resolution": resolution,
            "rule": message.rule,
        }
        for category in revoked:
            consent.record(
                session, practice=practice, phone=message.phone, category=category,
                action=Action.OPT_OUT, source=Source.STAFF, occurred_at=message.received_at,
                evidence=evidence, inbound_message_id=message.id,
            )  # fmt: skip
    session.commit()
    session.refresh(message)
    log.info(
        "review id=%s practice=%s from=%s resolved=%s revoked=%s",
        message.id, practice, mask(message.phone), resolution,
        ",".join(c.value for c in revoked) or "-",
    )  # fmt: skip
    return message


def _categories_of(practice: Practice, message: InboundMessage) -> tuple[Category, ...]:
    """The categories the texted sender carries, as a STOP to it would revoke
    (``gateway.core.consent_rules.revoked``: every category when the sender carries none any
    more)."""
    carried = practice.categories_for_sender(message.sender)
    if not carried:
        log.warning(
            "review id=%s: sender %s carries no category of practice %s; revoking every category",
            message.id, message.sender, practice.slug,
        )  # fmt: skip
    return consent_rules.revoked(Scope.SENDER, carried)


def overdue(session: Session, practice: Practice, now: datetime) -> int:
    """How many open items of the practice are older than its ``review_alert_hours``."""
    return overdue_counts(session, (practice,), now).get(practice.slug, 0)


def overdue_counts(
    session: Session, practices: Iterable[Practice], now: datetime
) -> dict[str, int]:
    """Overdue open items per practice slug (practices with none are left out), in one query:
    those received more than the practice's ``review_alert_hours`` before ``now``."""
    received_before = {
        practice.slug: now - timedelta(hours=practice.review_alert_hours) for practice in practices
    }
    return reviews.overdue_counts(session, received_before)
