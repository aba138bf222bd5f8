"""Failed sign-ins per client address, in memory: past ``limit`` failures within ``window``, the
address is refused before any password is checked. Complements the per-account lock (kept in
the database, shared by every worker): this one slows down guessing across many accounts from
one address. Per process; no Flask here."""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta


class FailedSignIns:
    def __init__(self, limit: int = 20, window: timedelta = timedelta(minutes=15)) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def blocked(self, address: str, now: datetime) -> bool:
        with self._lock:
            return len(self._recent(address, now)) >= self.limit

    def record(self, address: str, now: datetime) -> None:
        with self._lock:
            self._recent(address, now).append(now)
            if len(self._failures) > 10_000:  # bounded memory: forget quiet addresses
                for key in [k for k in self._failures if not self._recent(k, now)]:
                    del self._failures[key]

    def _recent(self, address: str, now: datetime) -> deque[datetime]:
        failures = self._failures.setdefault(address, deque())
        while failures and now - failures[0] > self.window:
            failures.popleft()
        return failures
