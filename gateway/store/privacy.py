"""Privacy rights over one number in one practice: keyed hashes, the suppression list, export.

Pure helpers and small queries; erasure's statements live in ``gateway.store.erasure``,
retention's in ``gateway.store.purge``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gateway.store.models import ConsentEvent, Suppression


def phone_hash(key: str, e164: str) -> str:
    """HMAC-SHA256 of a number: equal for equal numbers, useless without the key."""
    return hmac.digest(key.encode(), e164.encode(), hashlib.sha256).hex()  # one-shot: cheaper


def is_suppressed(session: Session, key: str, practice: str, phone: str, category: str) -> bool:
    """Whether the number was put on the suppression list for the category (erased or purged
    after opting out)."""
    return _listed(session, practice, phone_hash(key, phone), category)


def suppress(
    session: Session, *, practice: str, hashed: str, category: str, reason: str, now: datetime
) -> bool:
    """Put a number (its :func:`phone_hash`) on the practice's suppression list for the category,
    unless it is already there; ``reason``: why (``erased_after_opt_out``,
    ``retention_after_opt_out``). True when an entry was added (pending in the session, flushed
    with the caller's transaction)."""
    if _listed(session, practice, hashed, category):
        return False
    session.add(Suppression(practice=practice, phone_hash=hashed, category=category,
                            reason=reason, created_at=now))  # fmt: skip
    return True


def _listed(session: Session, practice: str, hashed: str, category: str) -> bool:
    return (
        session.scalar(
            select(Suppression.id).where(
                Suppression.practice == practice,
                Suppression.phone_hash == hashed,
                Suppression.category == category,
            )
        )
        is not None
    )


def cited_inbound_ids() -> Select[tuple[int | None]]:
    """The ids of inbound texts a consent event cites as its proof (a subquery): such a text is
    kept as long as the event, through erasure and the SMS-log retention alike."""
    return select(ConsentEvent.inbound_message_id).where(
        ConsentEvent.inbound_message_id.is_not(None)
    )
