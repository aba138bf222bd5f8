"""The audit log: who (an API token's fingerprint, a staff member, a job) read or changed which
contact. Rows carry a keyed hash of the number and its last four digits, never the number or a
message body, so the log itself holds no personal data worth stealing."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from gateway.store.models import AuditEvent, utcnow
from gateway.store.privacy import phone_hash


def token_fingerprint(token: str) -> str:
    """A stable, non-reversible name for an API token, fit for logs and the audit log."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def record(
    session: Session,
    *,
    hash_key: str,
    actor: str,
    action: str,
    practice: str,
    phone: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one audit event (flushed with the caller's transaction; not committed)."""
    session.add(
        AuditEvent(
            at=utcnow(),
            actor=actor,
            action=action,
            practice=practice,
            phone_hash=phone_hash(hash_key, phone) if phone else None,
            phone_last4=phone[-4:] if phone else None,
            details=dict(details or {}),
        )
    )
