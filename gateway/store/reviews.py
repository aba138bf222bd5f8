"""The staff review queue: inbound texts stored with ``review_status = open`` (possible opt-outs).

Reads page through a practice's open items in one order (``received_at``, then ``id``); resolving
is one guarded UPDATE, so of two staff members resolving an item at once exactly one wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, undefer

from gateway.core.domain import ReviewStatus
from gateway.store.models import InboundMessage


def open_page(
    session: Session, practice: str, limit: int, after: tuple[datetime, int] | None = None
) -> list[InboundMessage]:
    """Up to ``limit`` open items of ``practice``, oldest first (``received_at``, then ``id``),
    with their ``rule`` loaded; ``after``: only the items that follow that ``(received_at, id)``
    position in this order (a keyset page). One SELECT, no lock."""
    query = (
        select(InboundMessage)
        .options(undefer(InboundMessage.rule))
        .where(
            InboundMessage.practice == practice,
            InboundMessage.review_status == ReviewStatus.OPEN.value,
        )
    )
    if after is not None:
        received_at, item_id = after
        query = query.where(
            or_(
                InboundMessage.received_at > received_at,
                and_(InboundMessage.received_at == received_at, InboundMessage.id > item_id),
            )
        )
    query = query.order_by(InboundMessage.received_at, InboundMessage.id).limit(limit)
    return list(session.scalars(query))


def position(session: Session, practice: str, item_id: int) -> tuple[datetime, int] | None:
    """``(received_at, id)`` of review item ``item_id`` of ``practice``, open or resolved (the
    keyset cursor of ``open_page``); None when it is no review item of the practice. One SELECT."""
    row = session.execute(
        select(InboundMessage.received_at, InboundMessage.id).where(
            InboundMessage.id == item_id,
            InboundMessage.practice == practice,
            InboundMessage.review_status.is_not(None),
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def fresh(session: Session, item_id: int) -> InboundMessage | None:
    """The inbound text ``item_id`` as the database holds it now (the session's copy, if any, is
    overwritten), or None. No lock: ``claim`` is the guard."""
    return session.get(InboundMessage, item_id, populate_existing=True)


def claim(
    session: Session,
    item_id: int,
    status: ReviewStatus,
    *,
    at: datetime,
    staff: str,
    note: str | None,
) -> bool:
    """Resolve item ``item_id`` as ``status`` if it is still open; returns whether this call did
    (False: resolved by someone else first, or no such item). One UPDATE guarded by
    ``review_status = open``, which holds the row's lock until the caller's transaction ends.
    Does not commit."""
    claimed = session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.id == item_id,
            InboundMessage.review_status == ReviewStatus.OPEN.value,
        )
        .values(review_status=status.value, reviewed_at=at, reviewed_by=staff, review_note=note)
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def overdue_counts(session: Session, received_before: Mapping[str, datetime]) -> dict[str, int]:
    """Open items received before ``received_before[slug]``, per practice slug (practices with
    none are left out); one grouped SELECT, none at all for an empty mapping."""
    conditions = [
        and_(InboundMessage.practice == slug, InboundMessage.received_at < cutoff)
        for slug, cutoff in received_before.items()
    ]
    if not conditions:
        return {}
    rows = session.execute(
        select(InboundMessage.practice, func.count())
        .where(InboundMessage.review_status == ReviewStatus.OPEN.value, or_(*conditions))
        .group_by(InboundMessage.practice)
    )
    return {slug: count for slug, count in rows}
