"""Failed sign-ins per client address, in the database: past ``limit`` failures within
``window``, the address is refused before any password is checked. Complements the per-account
lock: this one slows down guessing across many accounts from one address. Kept in the database
(a keyed hash of the address, not the address), so the limit holds across every web worker and
machine, not per process. No Flask here."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.store.models import SignInFailure


class FailedSignIns:
    def __init__(
        self, hash_key: str, limit: int = 20, window: timedelta = timedelta(minutes=15)
    ) -> None:
        self.hash_key = hash_key
        self.limit = limit
        self.window = window

    def _hash(self, address: str) -> str:
        return hmac.new(self.hash_key.encode(), address.encode(), hashlib.sha256).hexdigest()

    def blocked(self, session: Session, address: str, now: datetime) -> bool:
        recent = session.scalar(
            select(func.count()).select_from(SignInFailure).where(
                SignInFailure.address_hash == self._hash(address),
                SignInFailure.failed_at > now - self.window,
            )
        )  # fmt: skip
        return (recent or 0) >= self.limit

    def record(self, session: Session, address: str, now: datetime) -> None:
        """Count one failure and forget every failure older than the window (the table stays
        small); commits, so that it stands whatever the request does next."""
        session.execute(delete(SignInFailure).where(SignInFailure.failed_at <= now - self.window))
        session.add(SignInFailure(address_hash=self._hash(address), failed_at=now))
        session.commit()
