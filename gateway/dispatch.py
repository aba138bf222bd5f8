"""One dispatch pass: claim due messages, decide, render, send, record.

Each message is decided at the moment of sending (a STOP that arrived after enqueue wins), in its
own short transaction, and the request to Twilio happens outside any transaction. Just before the
request, ``send_started_at`` is committed: if the process dies after that, housekeeping marks the
message ``uncertain`` instead of sending it again.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask

from gateway import (
    consent,
    contacts,
    gsm7,
    outbox,
    phone,
    policy,
    privacy,
    recipients,
    reminders,
    retry,
    sms_templates,
    windows,
)
from gateway.config import Practice, Settings
from gateway.db import Database
from gateway.delivery import react_to_error
from gateway.domain import Category, ConsentStatus, OutboxStatus, SkipReason, Unreachable
from gateway.models import OutboundMessage, utcnow
from gateway.transport import (
    OutboundSms,
    PermanentSendError,
    RetryableSendError,
    SendResult,
    Transport,
)

log = logging.getLogger(__name__)

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
_IN_FLIGHT = (OutboxStatus.SENDING, OutboxStatus.UNCERTAIN)


@dataclass
class PassSummary:
    """What one pass did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    retrying: int = 0
    failed: int = 0
    uncertain: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self.skipped.items()))
        return (
            f"claimed {self.claimed}: sent {self.sent}, skipped {skipped}"
            + (f" ({reasons})" if reasons else "")
            + f", deferred {self.deferred}, retrying {self.retrying}, failed {self.failed}"
            + (f", uncertain {self.uncertain}" if self.uncertain else "")
        )


@dataclass(frozen=True)
class _Prepared:
    sms: OutboundSms
    attempts: int


class Dispatcher:
    """Sends what is due. One instance per process; ``run_pass`` is called by the scheduler."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        transport: Transport,
        *,
        owner: str | None = None,
        lease: timedelta = timedelta(minutes=2),
        batch: int = 100,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        max_attempts: int = retry.MAX_ATTEMPTS,
    ) -> None:
        self.database = database
        self.settings = settings
        self.transport = transport
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = lease
        self.batch = batch
        self.clock = clock
        self.rng = rng or random.Random()
        self.max_attempts = max_attempts
        base = settings.public_base_url
        self.status_callback = base + STATUS_CALLBACK_PATH if base else None

    @classmethod
    def from_app(cls, app: Flask, **kwargs: Any) -> Dispatcher:
        return cls(
            app.extensions["gateway.db"],
            app.extensions["gateway.settings"],
            app.extensions["gateway.transport"],
            **kwargs,
        )

    def run_pass(self) -> PassSummary:
        summary = PassSummary()
        with self.database.sessions() as session:
            claimed = outbox.claim_due(
                session, now=self.clock(), owner=self.owner, lease=self.lease, limit=self.batch
            )
        summary.claimed = len(claimed)
        for message in claimed:
            self._process(message, summary)
        if claimed:
            log.info("dispatch pass: %s", summary)
        return summary

    def _process(self, message: OutboundMessage, summary: PassSummary) -> None:
        prepared = self._decide(message, summary)
        if prepared is None:
            return
        try:
            result = self.transport.send(prepared.sms)
        except RetryableSendError as exc:
            self._retry_or_fail(message, prepared.attempts, exc, summary)
        except PermanentSendError as exc:
            self._fail(message, prepared.attempts, exc, summary)
        except Exception:  # a bug or an unknown failure: Twilio may have the message
            log.exception("send of message %s failed unexpectedly; marked uncertain", message.id)
            self._record(message, status=OutboxStatus.UNCERTAIN, attempts=prepared.attempts,
                         reason="unexpected error while sending")  # fmt: skip
            summary.uncertain += 1
        else:
            self._sent(message, prepared.attempts, result)
            summary.sent += 1

    def _decide(self, message: OutboundMessage, summary: PassSummary) -> _Prepared | None:
        """Apply the policy; for a send, render it and commit ``send_started_at``."""
        now = self.clock()
        practice = self.settings.practices.get(message.practice)
        with self.database.sessions() as session:
            if practice is None:  # removed from the practices file since enqueue
                self._finish(session, message, status=OutboxStatus.SKIPPED,
                             reason=SkipReason.NO_SENDER.value)  # fmt: skip
                summary.skipped[SkipReason.NO_SENDER.value] += 1
                return None
            facts, recipient, language = self._facts(session, message, practice, now)
            try:
                body = gsm7.to_gsm7(
                    reminders.render(message.template, message.params, practice, language)
                )
            except Exception as exc:
                self._finish(session, message, status=OutboxStatus.FAILED, completed_at=now,
                             reason=f"template did not render: {type(exc).__name__}")  # fmt: skip
                summary.failed += 1
                return None
            facts = replace(facts, body_chars=len(body), body_segments=gsm7.segments(body))
            decision = policy.decide(facts, now)
            if isinstance(decision, policy.Skip):
                self._finish(session, message, status=OutboxStatus.SKIPPED,
                             reason=decision.reason.value)  # fmt: skip
                summary.skipped[decision.reason.value] += 1
                return None
            if isinstance(decision, policy.Defer):
                self._finish(session, message, status=OutboxStatus.SCHEDULED,
                             next_attempt_at=decision.until, reason=decision.reason)  # fmt: skip
                summary.deferred += 1
                return None
            assert recipient is not None
            sender = practice.senders[Category(message.category)]
            started = outbox.transition(
                session, message.id, OutboxStatus.SENDING, owner=self.owner,
                send_started_at=now, body=body, sender=sender, sent_to=recipient,
            )  # fmt: skip
            session.commit()
            if not started:
                log.warning(
                    "message %s: lease lost before sending; left to its new owner", message.id
                )
                return None
        message.sender = sender
        sms = OutboundSms(
            to=recipient, sender=sender, body=body, status_callback=self.status_callback
        )
        return _Prepared(sms=sms, attempts=message.attempts + 1)

    def _facts(
        self, session: Any, message: OutboundMessage, practice: Practice, now: datetime
    ) -> tuple[policy.Facts, str | None, str]:
        """Everything the policy needs, read in this transaction; the recipient; the language."""
        category = Category(message.category)
        patient = contacts.get(session, message.practice, message.phone)
        today = now.astimezone(ZoneInfo(practice.time_zone)).date()
        person = recipients.Person(
            phone=message.phone,
            date_of_birth=patient.date_of_birth if patient else None,
            guardian_phone=patient.guardian_phone if patient else None,
            alternate_phone=patient.alternate_phone if patient else None,
            do_not_text=bool(patient and patient.do_not_text),
        )
        recipient = recipients.resolve(
            person, category, today, minimum_age=practice.minimum_age,
            guardian_required_under=practice.guardian_required_under,
        )  # fmt: skip
        language = (patient.language if patient else None) or practice.language
        if recipient.phone is None:
            facts = policy.Facts(
                expires_at=message.expires_at, consent_status=ConsentStatus.NONE,
                consent_allows=False, recipient_block=recipient.block,
            )  # fmt: skip
            return facts, None, language
        target = patient if recipient.phone == message.phone else contacts.get(
            session, message.practice, recipient.phone
        )  # fmt: skip
        state = consent.current(
            session, message.practice, recipient.phone, (category,), now=now,
            pending_ttl=consent.pending_ttl(practice),
        )[category]  # fmt: skip
        spec = sms_templates.catalog().get(message.template)
        allows = state.allows_sending or bool(
            spec and spec.confirms_opt_in and state.status is ConsentStatus.PENDING
        )
        exempt = category is Category.TRANSACTIONAL and state.status is ConsentStatus.IMPLIED
        if category is Category.MARKETING:
            caps = (policy.Cap(practice.marketing_per_day, timedelta(hours=24)),)
        elif exempt:
            caps = (
                policy.Cap(practice.transactional_per_day, timedelta(hours=24)),
                policy.Cap(practice.transactional_per_week, timedelta(days=7)),
            )
        else:
            caps = ()
        facts = policy.Facts(
            expires_at=message.expires_at,
            consent_status=state.status,
            consent_allows=allows,
            unreachable=Unreachable(target.unreachable) if target and target.unreachable else None,
            has_sender=category in practice.senders,
            window=practice.windows[category],
            zones=windows.zones_for(
                target.time_zone if target else None,
                phone.time_zones(recipient.phone),
                practice.time_zone,
            ),
            caps=caps,
            recent_sends=outbox.recent_sends(
                session, message.practice, recipient.phone, category.value, now - timedelta(days=7)
            ),
            exempt_limits=exempt,
            suppressed=state.status is ConsentStatus.IMPLIED
            and privacy.is_suppressed(
                session, self.settings.hash_key, message.practice, recipient.phone, category.value
            ),  # fmt: skip
        )
        return facts, recipient.phone, (target.language if target else None) or language

    def _finish(self, session: Any, message: OutboundMessage, **values: Any) -> None:
        outbox.transition(
            session, message.id, OutboxStatus.SENDING, owner=self.owner,
            lease_owner=None, lease_expires_at=None, **values,
        )  # fmt: skip
        session.commit()

    def _sent(self, message: OutboundMessage, attempts: int, result: SendResult) -> None:
        # Recorded even if housekeeping meanwhile marked it uncertain: Twilio has it.
        self._record(message, status=OutboxStatus.SENT, attempts=attempts, provider_sid=result.sid,
                     provider_status=result.status, sent_at=self.clock(), reason=None,
                     error_code=None)  # fmt: skip

    def _retry_or_fail(
        self, message: OutboundMessage, attempts: int, exc: RetryableSendError, summary: PassSummary
    ) -> None:
        if retry.gives_up(attempts, self.max_attempts):
            self._record(message, status=OutboxStatus.FAILED, attempts=attempts,
                         error_code=exc.code, completed_at=self.clock(),
                         reason=f"gave up after {attempts} attempts: {exc}")  # fmt: skip
            summary.failed += 1
            return
        delay = retry.backoff(attempts, retry_after=exc.retry_after, rng=self.rng)
        self._record(message, status=OutboxStatus.SCHEDULED, attempts=attempts,
                     next_attempt_at=self.clock() + delay, send_started_at=None,
                     error_code=exc.code, reason=f"retrying: {exc}")  # fmt: skip
        summary.retrying += 1

    def _fail(
        self, message: OutboundMessage, attempts: int, exc: PermanentSendError, summary: PassSummary
    ) -> None:
        now = self.clock()
        with self.database.sessions() as session:
            outbox.transition(
                session, message.id, _IN_FLIGHT, status=OutboxStatus.FAILED, attempts=attempts,
                error_code=exc.code, completed_at=now, reason=str(exc),
                lease_owner=None, lease_expires_at=None,
            )  # fmt: skip
            if exc.code is not None:
                react_to_error(session, self.settings, message, exc.code, now)
            session.commit()
        summary.failed += 1

    def _record(self, message: OutboundMessage, **values: Any) -> None:
        with self.database.sessions() as session:
            outbox.transition(session, message.id, _IN_FLIGHT, lease_owner=None,
                              lease_expires_at=None, **values)  # fmt: skip
            session.commit()
