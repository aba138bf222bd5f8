"""Dispatch: claim due messages, gather their facts, render, decide, pace, send, record.

Each message is decided at the moment of sending (a STOP that arrived after enqueue wins), in its
own short transaction, and the request to Twilio happens outside any transaction. The decision is
``gateway.core.policy.decide``'s alone, over the facts ``gateway.store.facts.gather`` reads in that
transaction and the text, rendered once (``reminders.render_text``): what is sent is the text the
policy measured. Just before the request, ``send_started_at`` is committed: if the process dies
after that, housekeeping marks the message ``uncertain`` and reconciliation asks Twilio before
anything is sent again.

Sends run on a thread pool (``concurrency`` requests in flight at most), so Twilio's latency does
not bound throughput; each sender's rate limit is kept across all processes by
``gateway.store.pacing``; on PostgreSQL a send holds a shared lock on the recipient's number from
the consent check until Twilio answers, so no text starts after a committed STOP
(``gateway.store.send_lock``).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from flask import Flask

from gateway.config import Practice, Settings
from gateway.core import log_fields, policy, recipients, retry
from gateway.core.domain import Category, ConsentStatus, OutboxStatus, SkipReason
from gateway.services import consent, metrics, reconcile, reminders, sms_templates
from gateway.services.delivery import react_to_error
from gateway.services.transport import (
    TOO_MANY_REQUESTS,
    OutboundSms,
    PermanentSendError,
    RetryableSendError,
    SendError,
    SendResult,
    Transport,
)
from gateway.store import event_outbox, facts, outbox, send_lock
from gateway.store.db import Database
from gateway.store.models import OutboundMessage, utcnow
from gateway.store.pacing import Busy, Pacer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("gateway.dispatch")  # the name operators filter on

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
_IN_FLIGHT = (OutboxStatus.SENDING, OutboxStatus.UNCERTAIN)


class Outcome(StrEnum):
    """What dispatch did with one message: the kinds ``PassSummary`` counts (each value is the
    name of its counter) and metrics label."""

    #: nothing to count: the lease was lost meanwhile, the number was erased, or processing
    #: failed (housekeeping takes the message back)
    NONE = "none"
    SENT = "sent"
    #: reason: the ``SkipReason``
    SKIPPED = "skipped"
    #: outside the sending window or over a frequency cap: scheduled for later
    DEFERRED = "deferred"
    #: reason: the Twilio error code, the HTTP status, or ``network``
    RETRYING = "retrying"
    #: reason: the Twilio error code, ``gave_up``, ``unknown`` or ``render``
    FAILED = "failed"
    #: Twilio may have it: reconciliation asks before anything is sent again
    UNCERTAIN = "uncertain"
    #: put back untried: the sender's rate limit, a recipient that changed mid-decision
    PACED = "paced"


class Result(str):
    """One message's ``Outcome`` and its reason, which read as one text: ``sent``,
    ``skipped:opted_out``, ``failed:21610`` (the form the metrics take)."""

    outcome: Outcome
    reason: str

    def __new__(cls, outcome: Outcome, reason: object = "") -> Result:
        reason = str(reason)
        self = super().__new__(cls, f"{outcome.value}:{reason}" if reason else outcome.value)
        self.outcome, self.reason = outcome, reason
        return self


NOTHING = Result(Outcome.NONE)


@dataclass
class PassSummary:
    """What one pass (or one drain) did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    retrying: int = 0
    failed: int = 0
    uncertain: int = 0
    #: put back untried: the sender's rate limit, a recipient that changed mid-decision
    paced: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, result: Result) -> None:
        if result.outcome is Outcome.SKIPPED:
            self.skipped[result.reason] += 1
        elif result.outcome is not Outcome.NONE:
            name = result.outcome.value
            setattr(self, name, getattr(self, name) + 1)

    def merge(self, other: PassSummary) -> None:
        for name in ("claimed", "sent", "deferred", "retrying", "failed", "uncertain", "paced"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)

    def __str__(self) -> str:
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self.skipped.items()))
        return (
            f"claimed {self.claimed}: sent {self.sent}, skipped {skipped}"
            + (f" ({reasons})" if reasons else "")
            + f", deferred {self.deferred}, retrying {self.retrying}, failed {self.failed}"
            + (f", uncertain {self.uncertain}" if self.uncertain else "")
            + (f", paced {self.paced}" if self.paced else "")
        )


@dataclass(frozen=True)
class _Prepared:
    sms: OutboundSms
    attempts: int


def _consent_of(
    session: Session, practice: Practice, phone: str, category: Category, now: datetime
) -> tuple[ConsentStatus, bool]:
    """The consent ledger's reading of a number's consent (``facts.ConsentReader``)."""
    state = consent.current(session, practice, phone, (category,), now=now)[category]
    return state.status, state.allows_sending


class Dispatcher:
    """Sends what is due. One instance per process; the scheduler calls ``drain``."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        transport: Transport,
        *,
        owner: str | None = None,
        lease: timedelta | None = None,
        batch: int | None = None,
        concurrency: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        max_attempts: int = retry.MAX_ATTEMPTS,
        pacer: Pacer | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.transport = transport
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = lease or timedelta(seconds=settings.dispatch_lease)
        self.batch = batch or settings.dispatch_batch
        self.concurrency = concurrency or settings.dispatch_concurrency
        self.clock = clock
        self.rng = rng or random.Random()
        self.max_attempts = max_attempts
        # the pacer's slots become ``next_attempt_at`` values: one clock for both
        self.pacer = pacer or Pacer(
            database.sessions, settings.sender_rates(), now=lambda: clock().timestamp()
        )
        self.reconcile_after = timedelta(seconds=settings.reconcile_after)
        self.locking = send_lock.supported(database.engine.dialect.name)
        base = settings.public_base_url
        self.status_callback = base + STATUS_CALLBACK_PATH if base else None
        self._queued: Counter[str] = Counter()  # per sender: messages put back behind its pace
        self._queued_lock = threading.Lock()
        self._local_locks = send_lock.Striped()

    @classmethod
    def from_app(cls, app: Flask, **kwargs: Any) -> Dispatcher:
        return cls(
            app.extensions["gateway.db"],
            app.extensions["gateway.settings"],
            app.extensions["gateway.transport"],
            **kwargs,
        )

    def run_pass(self) -> PassSummary:
        """Claim one batch and process it (sends in parallel); returns what happened."""
        summary = PassSummary()
        claimed = self._claim()
        summary.claimed = len(claimed)
        if len(claimed) == 1 or self.concurrency == 1:
            for message in claimed:
                summary.add(self._process(message))
        elif claimed:
            with ThreadPoolExecutor(min(self.concurrency, len(claimed)), "dispatch") as pool:
                for outcome in pool.map(self._process, claimed):
                    summary.add(outcome)
        self._queued.clear()
        if claimed:
            log.info("dispatch pass: %s", summary)
        return summary

    def drain(self, stop: threading.Event | None = None) -> PassSummary:
        """Send until nothing is due, claiming the next batch while the last is still sending,
        so the pool never runs dry between batches. ``stop`` ends claiming; what was claimed is
        finished."""
        total = PassSummary()
        pending: set[Future[Result]] = set()
        exhausted = False
        with ThreadPoolExecutor(self.concurrency, "dispatch") as pool:
            while True:
                if not exhausted and len(pending) <= self.concurrency:
                    if stop is not None and stop.is_set():
                        exhausted = True
                    else:
                        claimed = self._claim()
                        total.claimed += len(claimed)
                        exhausted = len(claimed) < self.batch
                        pending |= {pool.submit(self._process, m) for m in claimed}
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    total.add(future.result())
        self._queued.clear()
        if total.claimed:
            log.info("dispatch: %s", total)
        return total

    def _claim(self) -> list[OutboundMessage]:
        with self.database.sessions() as session:
            return outbox.claim_due(
                session, now=self.clock(), owner=self.owner, lease=self.lease, limit=self.batch
            )

    def _process(self, message: OutboundMessage) -> Result:
        with log_fields.practice_named(message.practice):  # named in this message's log lines
            try:
                result = self._process_one(message)
            except Exception:  # one message's trouble must not stop the others; its lease expires
                log.exception(
                    "message %s: dispatch failed; housekeeping will take it back", message.id
                )
                return NOTHING
        metrics.count_send(message.practice, message.category, result.outcome, result.reason)
        return result

    def _process_one(self, message: OutboundMessage) -> Result:
        with self._guard(message) as (session, locked):
            prepared = self._decide(message, session, locked)
            if isinstance(prepared, Result):
                return prepared
            try:
                result = self.transport.send(prepared.sms)
            except SendError as exc:
                error: SendError | Exception = exc
            except Exception as exc:  # a bug or an unknown failure: Twilio may have the message
                log.exception("send of message %s failed unexpectedly", message.id)
                error = exc
            else:
                error = None  # type: ignore[assignment]
        # Recorded after the recipient's lock is released: a 21610 records a consent event,
        # which takes that lock exclusively.
        if error is None:
            self._sent(message, prepared.attempts, result)
            return Result(Outcome.SENT)
        if isinstance(error, RetryableSendError):
            return self._retry_or_fail(message, prepared.attempts, error)
        if isinstance(error, PermanentSendError):
            return self._fail(message, prepared.attempts, error)
        self._uncertain(message, prepared.attempts, error)
        return Result(Outcome.UNCERTAIN)

    @contextmanager
    def _guard(self, message: OutboundMessage) -> Iterator[tuple[Session, frozenset[str]]]:
        """A session for deciding, and every number the message might go to (the patient's, a
        guardian's, an alternate) locked until the block ends: in this process, and on
        PostgreSQL (advisory locks) and SQLite (file locks) across processes
        (``gateway.store.send_lock``). So two messages to one number are
        decided one after the other (frequency caps hold) and a consent change waits for a send
        under way. Yields (session, the numbers locked)."""
        with self.database.sessions() as session:
            phones = facts.numbers(session, message.practice, message.phone)
            session.rollback()
        with self._local_locks.hold(phones):
            if not self.locking:
                # SQLite: file locks shared with the web process, taken before any transaction
                files = send_lock.file_locks(self.database.engine)
                with (
                    files.hold(phones) if files else nullcontext(),
                    self.database.sessions() as session,
                ):
                    yield session, phones
                return
            with send_lock.holding(self.database.engine, phones) as session:
                yield session, phones

    def _behind_pace(
        self, session: Session, message: OutboundMessage, sender: str, busy: Busy
    ) -> Result:
        """Put the message back for when the sender will have a slot for it (those put back
        in one pass one interval apart, so that they do not all come due at once)."""
        rate = self.pacer.rates[sender] or 1.0
        with self._queued_lock:
            ahead = self._queued[sender]
            self._queued[sender] += 1
        until = datetime.fromtimestamp(busy.next_free + ahead / rate, UTC)
        return self._leave(
            session, message, Result(Outcome.PACED), status=OutboxStatus.SCHEDULED,
            next_attempt_at=until, reason=f"waiting for the sender's rate limit ({rate:g}/s)",
        )  # fmt: skip

    def _decide(
        self, message: OutboundMessage, session: Session, locked: frozenset[str]
    ) -> _Prepared | Result:
        """Gather the facts, render the text, apply the policy; for a send, wait for the
        sender's slot and commit ``send_started_at``."""
        now = self.clock()
        if outbox.is_erased(message.phone):  # never sent: its number was erased
            return self._leave(session, message, NOTHING, status=OutboxStatus.CANCELLED,
                               reason="erased")  # fmt: skip
        practice = self.settings.practices.get(message.practice)
        if practice is None:  # removed from the practices file since enqueue
            reason = SkipReason.NO_SENDER.value
            return self._leave(session, message, Result(Outcome.SKIPPED, reason),
                               status=OutboxStatus.SKIPPED, reason=reason)  # fmt: skip
        found = facts.gather(session, message, practice, now=now,
                             hash_key=self.settings.hash_key, consent_of=_consent_of)  # fmt: skip
        # a guardian (or an alternate number) with no language on file reads the patient's
        on_file = found.recipient_language or found.patient_language
        language = recipients.language_for(on_file, practice.language)
        try:
            text = reminders.render_text(message.template, message.params, practice, language,
                                         max_chars=policy.max_chars(found.facts))  # fmt: skip
        except Exception as exc:
            return self._leave(session, message, Result(Outcome.FAILED, "render"),
                               status=OutboxStatus.FAILED, completed_at=now,
                               reason=f"template did not render: {type(exc).__name__}")  # fmt: skip
        spec = sms_templates.catalog().get(message.template)
        decision = policy.decide(
            replace(found.facts, confirms_opt_in=bool(spec and spec.confirms_opt_in),
                    body_chars=text.chars, body_segments=text.segments),
            now,
        )  # fmt: skip
        if isinstance(decision, policy.Skip):
            reason = decision.reason.value
            return self._leave(session, message, Result(Outcome.SKIPPED, reason),
                               status=OutboxStatus.SKIPPED, reason=reason)  # fmt: skip
        if isinstance(decision, policy.Defer):
            return self._leave(session, message, Result(Outcome.DEFERRED),
                               status=OutboxStatus.SCHEDULED, next_attempt_at=decision.until,
                               reason=decision.reason)  # fmt: skip
        recipient = found.recipient
        assert recipient is not None
        if recipient not in locked:  # its contact changed just now
            return self._leave(session, message, Result(Outcome.PACED),
                               status=OutboxStatus.SCHEDULED, next_attempt_at=now,
                               reason="recipient changed while deciding; next pass")  # fmt: skip
        sender = practice.senders[message.category]
        if self.pacer.paced(sender):
            session.commit()  # end the reads: no transaction is held while waiting
            slot = self.pacer.reserve(sender)
            if isinstance(slot, Busy):
                return self._behind_pace(session, message, sender, slot)
            self.pacer.wait(slot)  # the recipient's lock is still held: no STOP slips in
            now = self.clock()
        # still ours and still for this number: an erasure cancels what is claimed but not
        # started, and nothing personal is written back into an erased row
        started = outbox.transition(
            session, message.id, OutboxStatus.SENDING, owner=self.owner, phone=message.phone,
            send_started_at=now, body=text.body, sender=sender, sent_to=recipient,
        )  # fmt: skip
        session.commit()
        if not started:
            log.warning("message %s: lease lost (or erased) before sending; not sent", message.id)
            return NOTHING
        message.sender = sender
        sms = OutboundSms(
            to=recipient, sender=sender, body=text.body, status_callback=self.status_callback
        )
        return _Prepared(sms=sms, attempts=message.attempts + 1)

    def _leave(
        self, session: Session, message: OutboundMessage, result: Result, **values: Any
    ) -> Result:
        """``_finish``, answering ``result``, or ``NOTHING`` when the lease was lost meanwhile."""
        return result if self._finish(session, message, **values) else NOTHING

    def _finish(self, session: Session, message: OutboundMessage, **values: Any) -> bool:
        """Leave the message with ``values`` unless its lease was lost; commits."""
        moved = outbox.transition(
            session, message.id, OutboxStatus.SENDING, owner=self.owner,
            lease_owner=None, lease_expires_at=None, **values,
        )  # fmt: skip
        if moved:
            event_outbox.reminder_moved(session, message, values.get("status"), self.clock())
        session.commit()
        return moved

    def _sent(self, message: OutboundMessage, attempts: int, result: SendResult) -> None:
        # Recorded even if housekeeping meanwhile marked it uncertain: Twilio has it.
        now = self.clock()
        self._record(message, status=OutboxStatus.SENT, attempts=attempts, provider_sid=result.sid,
                     provider_status=result.status, sent_at=now, reason=None, error_code=None,
                     next_attempt_at=now + self.reconcile_after)  # fmt: skip

    def _uncertain(self, message: OutboundMessage, attempts: int, exc: Exception) -> None:
        """Twilio may have the message: reconciliation looks it up before any resend."""
        reason = str(exc) if isinstance(exc, SendError) else "unexpected error while sending"
        self._record(message, status=OutboxStatus.UNCERTAIN, attempts=attempts,
                     next_attempt_at=self.clock() + reconcile.FIRST_LOOK,
                     reason=f"{reason}; checking with Twilio before resending")  # fmt: skip

    def _retry_or_fail(
        self, message: OutboundMessage, attempts: int, exc: RetryableSendError
    ) -> Result:
        throttled = exc.http_status == 429 or exc.code == TOO_MANY_REQUESTS
        if retry.gives_up(attempts, self.max_attempts, throttled=throttled):
            self._record(message, status=OutboxStatus.FAILED, attempts=attempts,
                         error_code=exc.code, completed_at=self.clock(),
                         reason=f"gave up after {attempts} attempts: {exc}")  # fmt: skip
            return Result(Outcome.FAILED, exc.code or "gave_up")
        delay = retry.backoff(attempts, retry_after=exc.retry_after, rng=self.rng)
        self._record(message, status=OutboxStatus.SCHEDULED, attempts=attempts,
                     next_attempt_at=self.clock() + delay, send_started_at=None,
                     error_code=exc.code, reason=f"retrying: {exc}")  # fmt: skip
        return Result(Outcome.RETRYING, exc.code or exc.http_status or "network")

    def _fail(self, message: OutboundMessage, attempts: int, exc: PermanentSendError) -> Result:
        now = self.clock()
        with self.database.sessions() as session:
            values = dict(status=OutboxStatus.FAILED, attempts=attempts, error_code=exc.code,
                          completed_at=now, reason=str(exc), lease_owner=None,
                          lease_expires_at=None)  # fmt: skip
            if outbox.transition(session, message.id, _IN_FLIGHT, phone=message.phone, **values):
                event_outbox.reminder_moved(session, message, OutboxStatus.FAILED, now)
                if exc.code is not None:
                    react_to_error(session, self.settings, message, exc.code, now)
            else:  # erased while Twilio answered: the outcome only, nothing about the number
                outbox.transition(session, message.id, _IN_FLIGHT, **values)
            session.commit()
        return Result(Outcome.FAILED, exc.code or "unknown")

    def _record(self, message: OutboundMessage, **values: Any) -> None:
        """Record a send's outcome (never anything personal: that was written before the send).
        A message erased while Twilio answered keeps its outcome but is never tried again."""
        with self.database.sessions() as session:
            values.update(lease_owner=None, lease_expires_at=None)
            if outbox.transition(session, message.id, _IN_FLIGHT, phone=message.phone,
                                 **values):  # fmt: skip
                event_outbox.reminder_moved(session, message, values["status"], self.clock())
            else:  # erased while sending: the outcome only, nothing about the number
                if values["status"] in (OutboxStatus.SCHEDULED, OutboxStatus.UNCERTAIN):
                    values.update(status=OutboxStatus.CANCELLED,
                                  reason="erased while sending; not tried again")  # fmt: skip
                outbox.transition(session, message.id, _IN_FLIGHT, **values)
            session.commit()
