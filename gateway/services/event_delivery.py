"""Delivery of the event outbox to each practice's scheduling system, by the scheduler process.

Each event is POSTed as ``{"type", "timestamp", "data"}`` JSON, signed by the Standard Webhooks
spec with the practice's ``whsec_`` secret (the ``standardwebhooks`` package): headers
``webhook-id`` (the same on every attempt), ``webhook-timestamp`` and ``webhook-signature``. A 2xx
answer is success; anything else, a redirect, a timeout or no connection is a failed attempt,
retried on the schedule of ``gateway.store.event_outbox``. Logs name the event's id, type,
practice and the answer's status, never its data (numbers).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook

from gateway.config import Settings
from gateway.store import event_outbox
from gateway.store.db import Database
from gateway.store.models import EventDelivery, utcnow

log = logging.getLogger("gateway.event_delivery")  # the name operators filter on

#: seconds to wait for a receiver's answer
TIMEOUT = 10.0
#: how long a claimed event is this process's before another may attempt it
LEASE = timedelta(seconds=60)
BATCH = 100
CONCURRENCY = 4
USER_AGENT = "sms-consent-gateway-events/1"


def body_of(event: EventDelivery) -> str:
    """The JSON body of an event: the same bytes on every attempt."""
    payload = {
        "type": event.type,
        "timestamp": event_outbox.iso(event.occurred_at),
        "data": event.data,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def headers_for(secret: str, webhook_id: str, body: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers signing ``body`` at ``now``."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


class EventDeliverer:
    """Attempts the due events; the scheduler calls ``run_pass``."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
        http: requests.Session | None = None,
        timeout: float = TIMEOUT,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:events"
        self.http = http or requests.Session()
        self.timeout = timeout
        self.concurrency = concurrency

    def run_pass(self, limit: int = BATCH) -> Counter[str]:
        """Claim up to ``limit`` due events and attempt each; counts per outcome."""
        with self.database.sessions() as session:
            claimed = event_outbox.claim_due(
                session, now=self.clock(), owner=self.owner, lease=LEASE, limit=limit
            )
        counts: Counter[str] = Counter()
        if not claimed:
            return counts
        workers = max(1, min(self.concurrency, len(claimed)))
        with ThreadPoolExecutor(workers, "events") as pool:
            for outcome in pool.map(self._attempt, claimed):
                counts[outcome] += 1
        log.info("events: %s", dict(counts))
        return counts

    def drain(self) -> Counter[str]:
        """Passes until nothing is due (what failed waits for its next attempt)."""
        total: Counter[str] = Counter()
        while True:
            counts = self.run_pass()
            total.update(counts)
            if sum(counts.values()) < BATCH:
                return total

    def _attempt(self, event: EventDelivery) -> str:
        try:
            return self._attempt_one(event)
        except Exception:  # one event's trouble must not stop the others; its lease expires
            log.exception("event %s: delivery attempt failed unexpectedly", event.webhook_id)
            return "error"

    def _attempt_one(self, event: EventDelivery) -> str:
        practice = self.settings.practices.get(event.practice)
        status_code: int | None = None
        if practice is None or not practice.events_url or not practice.events_secret:
            error = "the practice has no [events] url and secret configured"
        else:
            body = body_of(event)
            now = self.clock()
            try:
                response = self.http.post(
                    practice.events_url, data=body.encode("utf-8"),
                    headers=headers_for(practice.events_secret, event.webhook_id, body, now),
                    timeout=self.timeout, allow_redirects=False,
                )  # fmt: skip
            except requests.RequestException as exc:
                error = f"no answer: {type(exc).__name__}"
            else:
                status_code = response.status_code
                response.close()
                if 200 <= status_code < 300:
                    with self.database.sessions() as session:
                        event_outbox.delivered(session, event, self.owner, self.clock(),
                                               status_code)  # fmt: skip
                    log.info("event %s %s practice=%s delivered (%s)", event.webhook_id,
                             event.type, event.practice, status_code)  # fmt: skip
                    return "delivered"
                error = f"HTTP {status_code}"
        with self.database.sessions() as session:
            outcome = event_outbox.attempt_failed(
                session, event, self.owner, self.clock(), status_code, error
            )
        log.warning("event %s %s practice=%s attempt %s failed: %s -> %s", event.webhook_id,
                    event.type, event.practice, event.attempts + 1, error,
                    outcome or "lease lost")  # fmt: skip
        return "failed" if outcome == event_outbox.FAILED else "retrying"


def from_app(app: Any, **kwargs: Any) -> EventDeliverer:
    return EventDeliverer(
        app.extensions["gateway.db"], app.extensions["gateway.settings"], **kwargs
    )
