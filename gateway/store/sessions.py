"""Signed-in console sessions, kept in the database so that sign-out, an account being disabled
or a password change ends them at once, whichever web worker serves the next request.

The browser holds a random token (in Flask's signed session cookie); the table holds its SHA-256.
A session ends after ``idle`` without a request or ``lifetime`` after sign-in, whichever comes
first. No Flask here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.store.models import StaffSession

#: a session's last_seen_at is written at most this often (not on every request)
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Limits:
    idle: timedelta
    lifetime: timedelta


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, account_id: int, now: datetime) -> str:
    """A new session for the account; returns the token for the cookie. Commits."""
    token = secrets.token_urlsafe(32)
    session.add(StaffSession(token_hash=_hash(token), staff_account_id=account_id,
                             created_at=now, last_seen_at=now))  # fmt: skip
    session.commit()
    return token


def resume(session: Session, token: str, now: datetime, limits: Limits) -> int | None:
    """The account id of a live session; an expired one is deleted. Commits what it writes."""
    row = session.scalar(select(StaffSession).where(StaffSession.token_hash == _hash(token)))
    if row is None:
        return None
    if now - row.last_seen_at > limits.idle or now - row.created_at > limits.lifetime:
        session.execute(delete(StaffSession).where(StaffSession.id == row.id))
        session.commit()
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        session.execute(update(StaffSession).where(StaffSession.id == row.id)
                        .values(last_seen_at=now))  # fmt: skip
        session.commit()
    return row.staff_account_id


def close(session: Session, token: str) -> None:
    """End a session (sign-out). Commits."""
    session.execute(delete(StaffSession).where(StaffSession.token_hash == _hash(token)))
    session.commit()


def purge_expired(session: Session, now: datetime, limits: Limits) -> int:
    """Delete sessions that can no longer be resumed (at sign-in time). Commits."""
    deleted = session.execute(
        delete(StaffSession).where(
            (StaffSession.last_seen_at < now - limits.idle)
            | (StaffSession.created_at < now - limits.lifetime)
        )
    ).rowcount
    session.commit()
    return deleted
