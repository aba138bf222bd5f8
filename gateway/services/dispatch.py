"""Dispatch: claim due messages a batch at a time, gather their facts, decide, pace, send, record.

A claimed batch goes through one pipeline (``_Pipeline``), in the dispatcher's thread but for
the requests:

1. **Lock** every number each message may go to (the patient's, a guardian's, an alternate),
   without waiting (``gateway.store.send_lock.Held``): on PostgreSQL advisory locks on the
   pipeline's connection, on SQLite ``flock`` stripes, and the exact numbers within the process.
   So a consent change (a STOP, an erasure) waits for a send under way to that number, and a
   send that starts after the change committed reads it: no text starts after a committed
   STOP. One message a number a batch: a second text to a number goes back for the next pass,
   so the caps see the first. A number another process holds is waited for on a thread of the
   pool, alone (``_Pipeline._alone``).
2. **Gather** the facts of the whole batch in five queries at most (``gateway.store.facts``),
   render each text once (``reminders.render_text``: what is sent is the text the policy
   measured) and **decide** each with ``gateway.core.policy.decide``, at the moment of sending
   (a STOP that arrived after enqueue wins).
3. **Pace**: each rate-limited sender's slots for the batch are reserved in one transaction
   shared by every scheduler process (``gateway.store.pacing``); what finds no slot within the
   horizon goes back for when the sender will have one.
4. **Write** in one transaction: the decided messages left as decided, the others moved to
   ``sending`` with their text and ``send_started_at``. If the process dies after that,
   housekeeping marks them ``uncertain`` and reconciliation asks Twilio before anything is sent
   again.
5. **Send** on a thread pool (``concurrency`` requests in flight), each at its slot, outside
   any transaction; a request does not start once the pipeline has found its database
   connection failed (it finds out when it next uses it: recording answers, or a check when
   nothing was answered for a while).
6. **Record** the answers as they come, in bulk (every ``_Pipeline.RECORD_EVERY`` at most), then
   let go of their numbers; a permanent failure is recorded after that, since a 21610 records
   an opt-out, which takes the number's lock.

``drain`` claims the next batch while the last one's requests are in flight, so the pool does
not run dry between batches.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask

from gateway.config import Settings
from gateway.core import log_fields, policy, recipients, retry
from gateway.core.domain import OutboxStatus, SkipReason
from gateway.services import metrics, reconcile, reminders, sms_templates
from gateway.services.delivery import react_to_error
from gateway.services.reminders import Text
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
from gateway.store.db import Database, DatabaseFailure, ping, session_on
from gateway.store.models import OutboundMessage, utcnow
from gateway.store.pacing import Busy, Pacer, Slot

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

log = logging.getLogger("gateway.dispatch")
T = TypeVar("T")  # the name operators filter on

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


@dataclass
class _Send:
    """A message moved to ``sending``: its request, the numbers locked for it, and when it may
    start (its pacing slot; None: now)."""

    message: OutboundMessage
    sms: OutboundSms
    attempts: int
    numbers: frozenset[str]
    slot: Slot | None = None


@dataclass
class _Answer:
    """What Twilio answered to one request (``error`` None: accepted), and when; ``started``
    False: the request was never made (the pipeline's database connection had failed)."""

    send: _Send
    result: SendResult | None
    error: Exception | None
    at: datetime
    started: bool = True


Leave = dict[int, tuple[OutboundMessage, Result, dict[str, Any]]]


def _one_per_number(
    messages: list[OutboundMessage], numbers: dict[tuple[str, str], frozenset[str]]
) -> tuple[list[tuple[OutboundMessage, frozenset[str]]], list[OutboundMessage]]:
    """The messages of a batch that share no number with an earlier one (with their numbers),
    and the others, which wait for it (one after the other, each decided once the one before
    is recorded, so that the frequency caps count it)."""
    first, later, seen = [], [], set()
    for message in messages:
        mine = numbers[(message.practice, message.phone)]
        if mine & seen:
            later.append(message)
        else:
            first.append((message, mine))
            seen |= mine
    return first, later


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
        # the pacer's slots become ``send_started_at`` values: one clock for both
        self.pacer = pacer or Pacer(
            database.sessions, settings.sender_rates(), now=lambda: clock().timestamp()
        )
        self.reconcile_after = timedelta(seconds=settings.reconcile_after)
        self.held = send_lock.held(database.engine)
        base = settings.public_base_url
        self.status_callback = base + STATUS_CALLBACK_PATH if base else None
        self._queued: Counter[str] = Counter()  # per sender: messages put back behind its pace
        #: when the messages put back behind a sender's pace in this drain come due (a heap)
        self._paced: list[datetime] = []
        self._queued_lock = threading.Lock()

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
        claimed = self._claim()
        summary = self.process(claimed)
        if claimed:
            log.info("dispatch pass: %s", summary)
        return summary

    def process(self, claimed: list[OutboundMessage]) -> PassSummary:
        """Process messages this dispatcher claimed, to the end; returns what happened."""
        summary = PassSummary(claimed=len(claimed))
        if claimed:
            with self._pipeline(summary) as pipeline:
                pipeline.start(claimed)
        self._queued.clear()
        return summary

    def drain(self, stop: threading.Event | None = None) -> PassSummary:
        """Send until nothing is due, claiming the next batch while the last is still sending,
        so that requests do not stop between batches. ``stop`` ends claiming; what was claimed
        is finished."""
        total = PassSummary()
        exhausted, self._paced = False, []
        # the next batch is decided while this many requests of the last are still to come
        ahead = max(self.concurrency, self.batch // 2)
        with self._pipeline(total) as pipeline:
            while True:
                if not exhausted and pipeline.in_flight <= ahead:
                    if (stop is not None and stop.is_set()) or pipeline.broken.is_set():
                        exhausted = True
                        continue
                    claimed = self._claim()
                    total.claimed += len(claimed)
                    exhausted = len(claimed) < self.batch
                    pipeline.start(claimed)
                    continue
                if pipeline.busy:
                    pipeline.collect()
                elif self._wait_for_paced(stop):
                    exhausted = False  # what waits behind a sender's pace comes due
                else:
                    break
        self._queued.clear()
        if total.claimed:
            log.info("dispatch: %s", total)
        return total

    def _wait_for_paced(self, stop: threading.Event | None) -> bool:
        """Wait for the next message put back behind a sender's pace in this drain to come
        due, if it does within the pacer's horizon; False when there is none to wait for (or
        ``stop`` was set)."""
        if not self._paced:
            return False
        delay = (heapq.heappop(self._paced) - self.clock()).total_seconds()
        if delay > self.pacer.horizon:
            self._paced.clear()  # the next drain takes them
            return False
        if delay > 0 and (stop.wait(delay) if stop is not None else time.sleep(delay)):
            return False  # stopped
        now = self.clock()
        while self._paced and self._paced[0] <= now:  # due as well: the claim takes them
            heapq.heappop(self._paced)
        return True

    def _claim(self) -> list[OutboundMessage]:
        with self.database.sessions() as session:
            return outbox.claim_due(
                session, now=self.clock(), owner=self.owner, lease=self.lease, limit=self.batch
            )

    @contextmanager
    def _pipeline(self, summary: PassSummary) -> Iterator[_Pipeline]:
        with (
            ThreadPoolExecutor(self.concurrency, "dispatch") as pool,
            _Pipeline(self, pool, summary) as pipeline,
        ):
            yield pipeline

    # --- a batch: decide, pace, then write what was decided -----------------------------------

    def prepare(
        self,
        session: Session,
        locked: list[tuple[OutboundMessage, frozenset[str]]],
        leave: Leave,
        patients: Mapping[tuple[str, str], Any] | None = None,
    ) -> tuple[list[_Send], list[tuple[OutboundMessage, Result]]]:
        """Decide each ``locked`` message (its numbers locked) and leave every message in
        ``leave`` (decided already) and every one decided not to be sent as decided; move the
        others to ``sending``; in bulk (``patients``: their contact records, if read already:
        ``facts.contacts``). Returns the sends and the others' results. Commits."""
        now = self.clock()
        found = facts.gather(session, [m for m, _ in locked], self.settings.practices, now=now,
                             hash_key=self.settings.hash_key, patients=patients)  # fmt: skip
        session.commit()  # end the reads: no transaction is held while reserving slots
        chosen: list[tuple[OutboundMessage, frozenset[str], Text, str]] = []
        for message, numbers in locked:
            with log_fields.practice_named(message.practice):
                try:
                    decided = self._decide(message, found[message.id], numbers, now)
                except Exception:  # one message's trouble must not stop the others
                    log.exception(
                        "message %s: dispatch failed; housekeeping will take it back", message.id
                    )
                    continue
            if isinstance(decided[0], Result):
                leave[message.id] = (message, *decided)
            else:
                chosen.append((message, numbers, *decided))
        sends = self._pace(chosen, leave)
        return self._write(session, sends, leave, now)

    def _decide(
        self, message: OutboundMessage, found: facts.Gathered, numbers: frozenset[str],
        now: datetime,
    ) -> tuple[Text, str] | tuple[Result, dict[str, Any]]:  # fmt: skip
        """Render the text and apply the policy: (the text, its recipient) to send it, or the
        result and the values to leave the message with."""
        practice = self.settings.practices[message.practice]
        # a guardian (or an alternate number) with no language on file reads the patient's
        on_file = found.recipient_language or found.patient_language
        language = recipients.language_for(on_file, practice.language)
        try:
            text = reminders.render_text(message.template, message.params, practice, language,
                                         max_chars=policy.max_chars(found.facts))  # fmt: skip
        except Exception as exc:
            return Result(Outcome.FAILED, "render"), {
                "status": OutboxStatus.FAILED, "completed_at": now,
                "reason": f"template did not render: {type(exc).__name__}",
            }  # fmt: skip
        spec = sms_templates.catalog().get(message.template)
        decision = policy.decide(
            replace(found.facts, confirms_opt_in=bool(spec and spec.confirms_opt_in),
                    body_chars=text.chars, body_segments=text.segments),
            now,
        )  # fmt: skip
        if isinstance(decision, policy.Skip):
            reason = decision.reason.value
            return Result(Outcome.SKIPPED, reason), {"status": OutboxStatus.SKIPPED,
                                                     "reason": reason}  # fmt: skip
        if isinstance(decision, policy.Defer):
            return Result(Outcome.DEFERRED), {"status": OutboxStatus.SCHEDULED,
                                              "next_attempt_at": decision.until,
                                              "reason": decision.reason}  # fmt: skip
        recipient = found.recipient
        assert recipient is not None
        if recipient not in numbers:  # its contact changed just now
            return Result(Outcome.PACED), {
                "status": OutboxStatus.SCHEDULED, "next_attempt_at": now,
                "reason": "recipient changed while deciding; next pass",
            }  # fmt: skip
        return text, recipient

    def _pace(
        self, chosen: list[tuple[OutboundMessage, frozenset[str], Text, str]], leave: Leave
    ) -> list[_Send]:
        """Reserve each paced sender's slots for the batch (one transaction a sender); what
        finds no slot within the pacer's horizon goes back for the time the sender will have
        one (those put back in one pass one interval apart, so they do not come due at once)."""
        senders = [self.settings.practices[m.practice].senders[m.category] for m, *_ in chosen]
        slots: dict[int, Slot | None] = {}
        for sender in dict.fromkeys(senders):
            indices = [n for n, s in enumerate(senders) if s == sender]
            rate = self.pacer.rates.get(sender)
            if not rate:
                slots.update(dict.fromkeys(indices))
                continue
            reserved = self.pacer.reserve_many(sender, len(indices))
            if isinstance(reserved, Busy):
                reserved, next_free = [], reserved.next_free
            else:
                next_free = reserved[-1].at + 1 / rate
            slots.update(zip(indices, reserved, strict=False))
            with self._queued_lock:
                ahead = self._queued[sender]
                self._queued[sender] += len(indices) - len(reserved)
            for k, n in enumerate(indices[len(reserved) :]):
                message = chosen[n][0]
                # due half a horizon before its slot: claimed again while the sender still
                # has slots reserved ahead, its slot follows theirs with no gap
                slot = next_free + (ahead + k) / rate
                until = datetime.fromtimestamp(slot - self.pacer.horizon / 2, UTC)
                heapq.heappush(self._paced, until)
                leave[message.id] = (message, Result(Outcome.PACED), {
                    "status": OutboxStatus.SCHEDULED, "next_attempt_at": until,
                    "reason": f"waiting for the sender's rate limit ({rate:g}/s)",
                })  # fmt: skip
        return [
            _Send(message, OutboundSms(to=recipient, sender=senders[n], body=text.body,
                                       status_callback=self.status_callback),
                  message.attempts + 1, numbers, slots[n])
            for n, (message, numbers, text, recipient) in enumerate(chosen)
            if n in slots
        ]  # fmt: skip

    def _write(
        self, session: Session, sends: list[_Send], leave: Leave, now: datetime
    ) -> tuple[list[_Send], list[tuple[OutboundMessage, Result]]]:
        """One transaction: the decided messages left as decided, the others moved to
        ``sending`` with ``send_started_at`` (still ours, and still for the number: an erasure
        cancels what is claimed but not started, and nothing personal is written back into an
        erased row)."""
        left = outbox.transition_many(
            session, {i: values for i, (_, _, values) in leave.items()}, OutboxStatus.SENDING,
            owner=self.owner, lease_owner=None, lease_expires_at=None,
        )  # fmt: skip
        for message_id in left:
            message, _, values = leave[message_id]
            event_outbox.reminder_moved(session, message, values["status"], now)
        started = outbox.transition_many(
            session,
            {s.message.id: {
                "send_started_at": datetime.fromtimestamp(s.slot.at, UTC) if s.slot else now,
                "body": s.sms.body, "sender": s.sms.sender, "sent_to": s.sms.to,
            } for s in sends},
            OutboxStatus.SENDING, owner=self.owner,
            phones={s.message.id: s.message.phone for s in sends},
        )  # fmt: skip
        session.commit()
        results = [(m, r if m.id in left else NOTHING) for m, r, _ in leave.values()]
        for send in sends:
            if send.message.id in started:
                send.message.sender = send.sms.sender
            else:
                log.warning("message %s: lease lost (or erased) before sending; not sent",
                            send.message.id)  # fmt: skip
                results.append((send.message, NOTHING))
        return [s for s in sends if s.message.id in started], results

    # --- a request (a thread of the pool) ----------------------------------------------------

    def send(self, send: _Send, broken: threading.Event) -> _Answer:
        """Make the request at its slot, unless the pipeline found its connection failed
        meanwhile (the number's lock may be gone with it)."""
        if send.slot is not None:
            self.pacer.wait(send.slot)  # the number's lock is held: no STOP slips in
        if broken.is_set():
            return _Answer(send, None, None, self.clock(), started=False)
        try:
            result, error = self.transport.send(send.sms), None
        except SendError as exc:
            result, error = None, exc
        except Exception as exc:  # a bug or an unknown failure: Twilio may have the message
            with log_fields.practice_named(send.message.practice):
                log.exception("send of message %s failed unexpectedly", send.message.id)
            result, error = None, exc
        return _Answer(send, result, error, self.clock())

    # --- the answers, recorded in bulk --------------------------------------------------------

    def record(
        self, session: Session, answers: list[_Answer]
    ) -> tuple[list[tuple[OutboundMessage, Result]], list[_Answer]]:
        """Record what Twilio answered (never anything personal: that was written before the
        send), in one transaction; a message erased while Twilio answered keeps its outcome but
        is never tried again. Returns the results, and the permanent failures, which the caller
        records (``fail``) once the numbers' locks are released: a 21610 records an opt-out,
        which takes that lock."""
        changes: dict[int, dict[str, Any]] = {}
        results: list[tuple[OutboundMessage, Result]] = []
        failures: list[_Answer] = []
        by_id: dict[int, OutboundMessage] = {}
        for answer in answers:
            message, attempts, error = answer.send.message, answer.send.attempts, answer.error
            if not answer.started:  # left in ``sending``: housekeeping and reconciliation
                results.append((message, NOTHING))
                continue
            by_id[message.id] = message
            if error is None:
                assert answer.result is not None
                changes[message.id] = dict(
                    status=OutboxStatus.SENT, attempts=attempts, provider_sid=answer.result.sid,
                    provider_status=answer.result.status, sent_at=answer.at, reason=None,
                    error_code=None, next_attempt_at=answer.at + self.reconcile_after,
                )  # fmt: skip
                results.append((message, Result(Outcome.SENT)))
            elif isinstance(error, RetryableSendError):
                values, result = self._retry_or_fail(attempts, error, answer.at)
                changes[message.id] = values
                results.append((message, result))
            elif isinstance(error, PermanentSendError):
                failures.append(answer)
            else:  # Twilio may have the message: reconciliation looks it up before any resend
                reason = str(error) if isinstance(error, SendError) else (
                    "unexpected error while sending")  # fmt: skip
                changes[message.id] = dict(
                    status=OutboxStatus.UNCERTAIN, attempts=attempts,
                    next_attempt_at=answer.at + reconcile.FIRST_LOOK,
                    reason=f"{reason}; checking with Twilio before resending",
                )  # fmt: skip
                results.append((message, Result(Outcome.UNCERTAIN)))
        if changes:
            ours = outbox.transition_many(
                session, changes, _IN_FLIGHT, phones={i: by_id[i].phone for i in changes},
                lease_owner=None, lease_expires_at=None,
            )  # fmt: skip
            now = self.clock()
            for message_id in ours:
                event_outbox.reminder_moved(session, by_id[message_id],
                                            changes[message_id]["status"], now)  # fmt: skip
            erased = {i: changes[i] for i in changes.keys() - ours}
            for values in erased.values():  # the outcome only, nothing about the number
                if values["status"] in (OutboxStatus.SCHEDULED, OutboxStatus.UNCERTAIN):
                    values.update(status=OutboxStatus.CANCELLED,
                                  reason="erased while sending; not tried again")  # fmt: skip
            if erased:
                outbox.transition_many(session, erased, _IN_FLIGHT, lease_owner=None,
                                       lease_expires_at=None)  # fmt: skip
            session.commit()
        return results, failures

    def _retry_or_fail(
        self, attempts: int, exc: RetryableSendError, at: datetime
    ) -> tuple[dict[str, Any], Result]:
        throttled = exc.http_status == 429 or exc.code == TOO_MANY_REQUESTS
        if retry.gives_up(attempts, self.max_attempts, throttled=throttled):
            return dict(status=OutboxStatus.FAILED, attempts=attempts, error_code=exc.code,
                        completed_at=at, reason=f"gave up after {attempts} attempts: {exc}",
                        ), Result(Outcome.FAILED, exc.code or "gave_up")  # fmt: skip
        delay = retry.backoff(attempts, retry_after=exc.retry_after, rng=self.rng)
        values = dict(status=OutboxStatus.SCHEDULED, attempts=attempts,
                      next_attempt_at=at + delay, send_started_at=None, error_code=exc.code,
                      reason=f"retrying: {exc}")  # fmt: skip
        return values, Result(Outcome.RETRYING, exc.code or exc.http_status or "network")

    def fail(self, answer: _Answer) -> tuple[OutboundMessage, Result]:
        """Record a permanent failure, and react to its error code (a 21610 is an opt-out)."""
        message, exc = answer.send.message, answer.error
        assert isinstance(exc, PermanentSendError)
        now = self.clock()
        with log_fields.practice_named(message.practice), self.database.sessions() as session:
            values = dict(status=OutboxStatus.FAILED, attempts=answer.send.attempts,
                          error_code=exc.code, completed_at=now, reason=str(exc),
                          lease_owner=None, lease_expires_at=None)  # fmt: skip
            if outbox.transition(session, message.id, _IN_FLIGHT, phone=message.phone, **values):
                event_outbox.reminder_moved(session, message, OutboxStatus.FAILED, now)
                if exc.code is not None:
                    react_to_error(session, self.settings, message, exc.code, now)
            else:  # erased while Twilio answered: the outcome only, nothing about the number
                outbox.transition(session, message.id, _IN_FLIGHT, **values)
            session.commit()
        return message, Result(Outcome.FAILED, exc.code or "unknown")


class _Pipeline:
    """The batches of one pass or drain under way: their numbers' locks, their requests in the
    pool, their answers recorded as they come. On PostgreSQL the locks are held on a connection
    of the pipeline's own, which the dispatcher's thread alone uses, and the batches are read and
    written on it; when a statement on it fails, requests not yet started are not made (their
    locks may be gone), and no more batches are claimed."""

    #: how long answers may wait to be recorded together (and their numbers' locks held)
    RECORD_EVERY = 0.02
    #: with nothing answered for this long, the connection is checked (PostgreSQL)
    CHECK_EVERY = 0.25

    def __init__(
        self, dispatcher: Dispatcher, pool: ThreadPoolExecutor, summary: PassSummary
    ) -> None:
        self.d = dispatcher
        self.pool = pool
        self.summary = summary
        self.connection: Connection | None = None
        self.broken = threading.Event()
        #: requests under way
        self.sending: set[Future[_Answer]] = set()
        #: messages whose numbers were held, each processed alone (``_alone``)
        self.waiting: set[Future[list[tuple[OutboundMessage, Result]]]] = set()
        #: futures of ``sending`` and ``waiting`` as they finish
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()

    def __enter__(self) -> _Pipeline:
        if self.d.held.postgres:
            self.connection = self.d.database.engine.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            while self.busy:
                self.collect()
        finally:
            if self.connection is not None:
                self.connection.close()  # closing it lets go of every lock it holds

    @property
    def busy(self) -> bool:
        return bool(self.sending or self.waiting)

    @property
    def in_flight(self) -> int:
        return len(self.sending) + len(self.waiting)

    @contextmanager
    def session(self, connection: Connection | None = None) -> Iterator[Session]:
        connection = connection or self.connection
        if connection is None:
            with self.d.database.sessions() as session:
                yield session
            return
        try:
            with session_on(connection) as session:
                yield session
        except DatabaseFailure:  # the connection, and its locks, may be gone (not a bug's error)
            if connection is self.connection:
                self.broken.set()
            raise

    def start(self, claimed: list[OutboundMessage]) -> None:
        """Lock, decide and write a claimed batch; hand its requests to the pool. A message
        whose numbers are held (by an earlier message, here or in another process) waits for
        them on a thread of the pool, after the requests (``_alone``)."""
        if not claimed:
            return
        practices = self.d.settings.practices
        leave: Leave = {}
        rest = []
        for message in claimed:
            if outbox.is_erased(message.phone):  # never sent: its number was erased
                leave[message.id] = (message, NOTHING, {"status": OutboxStatus.CANCELLED,
                                                        "reason": "erased"})  # fmt: skip
            elif message.practice not in practices:  # removed from the practices file
                reason = SkipReason.NO_SENDER.value
                leave[message.id] = (
                    message,
                    Result(Outcome.SKIPPED, reason),
                    {"status": OutboxStatus.SKIPPED, "reason": reason},
                )
            else:
                rest.append(message)
        locked: list[tuple[OutboundMessage, frozenset[str]]] = []
        alone: list[tuple[OutboundMessage, frozenset[str]]] = []
        try:
            with self.session() as session:
                keys = {(m.practice, m.phone) for m in rest}
                patients = facts.contacts(session, keys)
                numbers = facts.numbers_in(patients, keys)
                session.rollback()
            first, later = _one_per_number(rest, numbers)
            taken = self.d.held.try_take([n for _, n in first], self.connection)
            for (message, mine), took in zip(first, taken, strict=True):
                (locked if took else alone).append((message, mine))
            alone += [(m, numbers[(m.practice, m.phone)]) for m in later]
            self.d.held.want(n for _, mine in alone for n in mine)
            with self.session() as session:
                sends, results = self.d.prepare(session, locked, leave, patients)
        except Exception:
            log.exception("dispatch of a batch failed; housekeeping will take it back")
            self._let_go(set().union(*(n for _, n in locked)))
            self._count((m, NOTHING) for m in claimed)
            return
        self._count(results)
        for send in sends:
            self.sending.add(self._submit(self.d.send, send, self.broken))
        sending = {s.message.id for s in sends}
        self._let_go(set().union(*(n for m, n in locked if m.id not in sending)))
        # after the sends: each waits for numbers held by a send before it, or elsewhere
        for message, mine in alone:
            self.waiting.add(self._submit(self._alone, message, mine))

    def collect(self) -> None:
        """Wait a moment for answers; record those in and let go of their numbers."""
        done: set[Future[Any]] = set()
        try:
            done.add(self._done.get(timeout=self.CHECK_EVERY))
        except queue.Empty:
            self._check()
            return
        if self.in_flight > 1:  # for more answers to record together (one wake-up for them)
            time.sleep(self.RECORD_EVERY)
        while True:
            try:
                done.add(self._done.get_nowait())
            except queue.Empty:
                break
        for future in done & self.waiting:
            self.waiting.discard(future)
            self._count(future.result())
        answered = [f.result() for f in done & self.sending]
        self.sending -= done
        if not answered:
            return
        try:
            with self.session() as session:
                results, failures = self.d.record(session, answered)
        except Exception:  # their send_started_at stands: reconciliation asks Twilio
            log.exception("recording %d answers failed; they will be checked with Twilio",
                          len(answered))  # fmt: skip
            results, failures = [(a.send.message, NOTHING) for a in answered], []
        self._let_go(set().union(*(a.send.numbers for a in answered)))
        self._count(results)
        self._count(self.d.fail(answer) for answer in failures)

    def _submit(self, work: Callable[..., T], *args: Any) -> Future[T]:
        future = self.pool.submit(work, *args)
        future.add_done_callback(self._done.put)
        return future

    def _alone(
        self, message: OutboundMessage, numbers: frozenset[str]
    ) -> list[tuple[OutboundMessage, Result]]:
        """A message whose numbers were held (by an earlier message of the batch, or another
        process): waits for them (on a connection of its own on PostgreSQL), then is decided,
        sent and recorded as a batch of its own."""
        d = self.d
        connection = None
        try:
            try:
                connection = d.database.engine.connect() if d.held.postgres else None
            except Exception:
                d.held.unwant(numbers)
                raise
            d.held.take(numbers, connection)
            try:
                with self.session(connection) as session:
                    sends, results = d.prepare(session, [(message, numbers)], {})
                failures: list[_Answer] = []
                if sends:
                    answer = d.send(sends[0], threading.Event())
                    with self.session(connection) as session:
                        recorded, failures = d.record(session, [answer])
                    results += recorded
            finally:
                d.held.give_back(numbers, connection)
            return results + [d.fail(answer) for answer in failures]
        except Exception:
            log.exception("message %s: dispatch failed; housekeeping will take it back", message.id)
            return [(message, NOTHING)]
        finally:
            if connection is not None:
                connection.close()

    def _check(self) -> None:
        if self.connection is not None and self.sending and not self.broken.is_set():
            try:
                with self.session() as session:
                    ping(session)
            except Exception:
                log.warning("the dispatcher's database connection failed; the requests not "
                            "yet made are left for reconciliation")  # fmt: skip

    def _let_go(self, numbers: set[str]) -> None:
        if not numbers:
            return
        try:
            self.d.held.give_back(numbers, self.connection)
        except Exception:  # the connection failed: closing it lets go of its locks
            log.exception("letting go of numbers' send locks failed; closing the connection")
            self.broken.set()
            if self.connection is not None:
                self.connection.invalidate()

    def _count(self, results: Iterable[tuple[OutboundMessage, Result]]) -> None:
        for message, result in results:
            self.summary.add(result)
            metrics.count_send(message.practice, message.category, result.outcome, result.reason)
