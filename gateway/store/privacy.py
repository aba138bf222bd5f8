"""Privacy rights over one number in one practice: keyed hashes, the suppression list, export.

Pure helpers and small queries; erasure and retention live in ``gateway.erasure``.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.models import Suppression


def phone_hash(key: str, e164: str) -> str:
    """HMAC-SHA256 of a number: equal for equal numbers, useless without the key."""
    return hmac.new(key.encode(), e164.encode(), hashlib.sha256).hexdigest()


def is_suppressed(session: Session, key: str, practice: str, phone: str, category: str) -> bool:
    """Whether the number was put on the suppression list for the category (erased or purged
    after opting out)."""
    return (
        session.scalar(
            select(Suppression.id).where(
                Suppression.practice == practice,
                Suppression.phone_hash == phone_hash(key, phone),
                Suppression.category == category,
            )
        )
        is not None
    )
