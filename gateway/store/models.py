"""SQLAlchemy 2.0 typed models.

Times are stored as timezone-aware UTC (``UTCDateTime`` gives aware values back on SQLite too).
Consent events are append-only: an attempt to UPDATE one raises before it reaches the database.
Message bodies, review notes, reminder params and consent evidence are encrypted at rest
(``EncryptedText``, ``EncryptedJSON``; see ``gateway.store.crypto``). Status, category, action and
source columns hold the string values of the ``gateway.core`` enums and give their members back
(``string_enum``); an assigned string becomes its member at once.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false, true

from gateway.core.confirmations import Response
from gateway.core.domain import (
    Action,
    Category,
    EventDeliveryStatus,
    OutboxStatus,
    ReviewStatus,
    Source,
    Unreachable,
)
from gateway.core.keywords import Intent
from gateway.store import crypto


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")

E = TypeVar("E", bound=enum.Enum)


def string_enum(enum_class: type[E], length: int) -> Enum:
    """A column of ``enum_class`` members stored as their string values in a ``VARCHAR(length)``,
    exactly as a plain ``String(length)`` column holds them: no database enum type and no CHECK
    constraint, so the schema is that of the migrations. Rows read back give members; a value
    that is not one of them raises ``LookupError``."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


class EncryptedText(TypeDecorator[str]):
    """Text encrypted at rest with the configured keys (``gateway.store.crypto``).

    Rows written before encryption (plaintext, without the prefix) read back as they are. Every
    encryption of a text differs, so SQL comparisons on the column mean nothing: never filter,
    group or sort on it.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else crypto.encrypt(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else crypto.decrypt(value)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document (``sort_keys``) encrypted at rest, stored as text.

    Reads rows written before encryption too: JSON text, or an already decoded document where the
    column is still JSON/JSONB (before migration 0005, or after its downgrade).
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return crypto.encrypt(text)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str | bytes):
            return value  # a JSONB column: psycopg already decoded the legacy document
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        return json.loads(crypto.decrypt(value))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Contact(Base):
    """A phone number known to one practice, with what the gateway knows about it."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("practice", "phone", name="uq_contacts_practice_phone"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    practice: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20))
    #: language of the patient's last keyword ("en"/"es"): replies and reminders use it
    language: Mapped[str | None] = mapped_column(String(8))
    #: set when Twilio said the number cannot receive SMS (invalid_number, not_mobile)
    unreachable: Mapped[Unreachable | None] = mapped_column(string_enum(Unreachable, 32))
    #: the Twilio error code that set ``unreachable``
    unreachable_code: Mapped[int | None] = mapped_column(Integer)
    #: IANA zone of the patient, when the practice knows it (wins over the number's area code)
    time_zone: Mapped[str | None] = mapped_column(String(64))
    #: a HIPAA confidential-communications request: no SMS at all to this number
    do_not_text: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: a number the patient designated instead of this one (E.164)
    alternate_phone: Mapped[str | None] = mapped_column(String(20))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    #: the parent's or guardian's number, for a minor's care messages (E.164)
    guardian_phone: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InboundMessage(Base):
    """An SMS a patient sent, as Twilio delivered it to the inbound webhook; one per MessageSid."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_practice_phone", "practice", "phone"),
        Index("ix_inbound_review_open", "practice", "review_status", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    practice: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20))
    #: the practice's number (or Messaging Service SID) the patient texted
    sender: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(EncryptedText)
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    intent: Mapped[Intent] = mapped_column(string_enum(Intent, 32))
    language: Mapped[str] = mapped_column(String(8))
    keyword: Mapped[str | None] = mapped_column(String(32))
    #: the id of the rule (``gateway.core.keywords.RULES``) or guard that classified it; loaded on
    #: first use (older schemas, read back after a downgrade, do not have it)
    rule: Mapped[str | None] = mapped_column(String(64), deferred=True)
    #: STOP/START/HELP when Twilio's Advanced Opt-Out handled the keyword (and replied itself)
    opt_out_type: Mapped[str | None] = mapped_column(String(16))
    #: the text the gateway answered with (None: an empty TwiML response); replayed on duplicates
    reply: Mapped[str | None] = mapped_column(Text)
    #: "open" for a possible opt-out awaiting staff review; None when no review is needed
    review_status: Mapped[ReviewStatus | None] = mapped_column(string_enum(ReviewStatus, 16))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the staff member (or token) who resolved the review
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    review_note: Mapped[str | None] = mapped_column(EncryptedText)


class ConsentEvent(Base):
    """One change of consent for (practice, phone, category). Appended, never edited.

    The current state is the newest event by ``occurred_at`` (then ``id``), so an older event
    that is recorded late never overrides a newer one.
    """

    __tablename__ = "consent_events"
    __table_args__ = (
        Index("ix_consent_current", "practice", "phone", "category", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    practice: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20))
    category: Mapped[Category] = mapped_column(string_enum(Category, 32))
    action: Mapped[Action] = mapped_column(string_enum(Action, 32))
    source: Mapped[Source] = mapped_column(string_enum(Source, 32))
    #: when the patient (or carrier, or staff) expressed it
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: when the gateway wrote it down
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    #: proof: MessageSid and body, keyword, disclosure text, IP, user agent, staff id, note
    evidence: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)


@event.listens_for(ConsentEvent, "before_update")
def _consent_events_are_append_only(mapper: Any, connection: Any, target: ConsentEvent) -> None:
    raise RuntimeError("consent events are append-only; record a new event instead")


class OutboundMessage(Base):
    """One message the gateway is to send: a reminder from the API, with its state machine.

    Every transition is an UPDATE guarded by the prior status (see ``gateway.store.outbox``).
    """

    __tablename__ = "outbound_messages"
    __table_args__ = (
        UniqueConstraint("practice", "external_id", name="uq_outbound_practice_external_id"),
        Index("ix_outbound_due", "status", "next_attempt_at"),
        Index("ix_outbound_practice_phone", "practice", "phone", "sent_at"),
        Index("ix_outbound_recipient_recent", "practice", "sent_to", "category", "sent_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    practice: Mapped[str] = mapped_column(String(64))
    #: the caller's id (idempotency key), unique per practice
    external_id: Mapped[str | None] = mapped_column(String(128))
    #: sha-256 of the normalised request, to tell a replay from a conflicting reuse of the id
    request_hash: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20))
    category: Mapped[Category] = mapped_column(string_enum(Category, 32))
    template: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    send_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    status: Mapped[OutboxStatus] = mapped_column(
        string_enum(OutboxStatus, 16), default=OutboxStatus.SCHEDULED
    )
    #: why it was skipped, deferred or failed
    reason: Mapped[str | None] = mapped_column(String(200))
    #: when a dispatcher should next look at it
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: set (and committed) just before the request to Twilio: a crash after it leaves "uncertain"
    send_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    sender: Mapped[str | None] = mapped_column(String(64))
    #: the number it actually went to, when not ``phone`` (a guardian's, an alternate)
    sent_to: Mapped[str | None] = mapped_column(String(20))
    #: the text as sent (rendered at send time)
    body: Mapped[str | None] = mapped_column(EncryptedText)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: Twilio's own last status (queued, sent, delivered, ...), for the no-regression rule
    provider_status: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[int | None] = mapped_column(Integer)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when a final delivery status (delivered / undelivered / failed) arrived
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the patient's reply to an appointment reminder: "confirmed" or "reschedule_requested"
    response: Mapped[Response | None] = mapped_column(string_enum(Response, 32))
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SenderPacing(Base):
    """The next free send slot of one sender (a number or a Messaging Service), in seconds since
    the epoch; every dispatcher reserves its slots here, so together they keep the sender's rate."""

    __tablename__ = "sender_pacing"

    sender: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Float(precision=53))


class Suppression(Base):
    """A number that must never be texted again in a category, kept after its data is erased.

    Holds a keyed hash of the number, not the number: the list survives erasure and retention
    purges without keeping the personal data it protects.
    """

    __tablename__ = "suppressions"
    __table_args__ = (
        UniqueConstraint("practice", "phone_hash", "category", name="uq_suppression"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    practice: Mapped[str] = mapped_column(String(64))
    #: HMAC-SHA256 of the E.164 number (``gateway.store.privacy.phone_hash``)
    phone_hash: Mapped[str] = mapped_column(String(64))
    category: Mapped[Category] = mapped_column(string_enum(Category, 32))
    #: why: "erased_after_opt_out", "retention_after_opt_out"
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Who (which API token or staff member) read or changed which contact, and when.

    Appended, never edited. Carries the number's keyed hash and its last four digits, not the
    number, and never a message body.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_practice_phone", "practice", "phone_hash", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: "token:<fingerprint>" or "staff:<id>" or "system:<job>"
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64))
    practice: Mapped[str] = mapped_column(String(64))
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    phone_last4: Mapped[str | None] = mapped_column(String(4))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


@event.listens_for(AuditEvent, "before_update")
def _audit_events_are_append_only(mapper: Any, connection: Any, target: AuditEvent) -> None:
    raise RuntimeError("audit events are append-only")


class StaffAccount(Base):
    """A staff member who signs in to the console (``flask staff create``); sees only the
    practices listed in ``staff_account_practices``. Disabled, never deleted: the audit log and
    the consent evidence name it."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: lower-case; the sign-in name
    email: Mapped[str] = mapped_column(String(128), unique=True)
    #: werkzeug.security hash (scrypt), never the password
    password_hash: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: consecutive failed sign-ins; reset by a successful one
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    #: after repeated failures, sign-in is refused until then
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StaffAccountPractice(Base):
    """One practice a staff account may see."""

    __tablename__ = "staff_account_practices"

    staff_account_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    practice: Mapped[str] = mapped_column(String(64), primary_key=True)


class StaffSession(Base):
    """A signed-in console session. The cookie carries a random id; only its SHA-256 is stored,
    so the table gives no one a way in. Deleted at sign-out; expired by idle time and age."""

    __tablename__ = "staff_sessions"
    __table_args__ = (Index("ix_staff_sessions_account", "staff_account_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_account_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventDelivery(Base):
    """One event for a practice's scheduling system (the event outbox), written in the same
    transaction as the change it reports and POSTed by the scheduler process, signed by the
    Standard Webhooks spec, until the receiver answers 2xx or the retry schedule is spent."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        Index("ix_event_deliveries_due", "status", "next_attempt_at"),
        Index("ix_event_deliveries_practice", "practice", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the ``webhook-id`` header: the same on every attempt (the receiver's idempotency key)
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    practice: Mapped[str] = mapped_column(String(64))
    #: reminder.sent, appointment.confirmed, consent.changed, ...
    type: Mapped[str] = mapped_column(String(64))
    #: when the change happened: the body's ``timestamp``
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the body's ``data`` (numbers: encrypted at rest)
    data: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    #: the number the event is about, for erasure (None: none)
    phone: Mapped[str | None] = mapped_column(String(20))
    #: pending (to be attempted), delivered (2xx), failed (the retry schedule is spent)
    status: Mapped[EventDeliveryStatus] = mapped_column(
        string_enum(EventDeliveryStatus, 16), default=EventDeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the scheduler process attempting it now (its lease ends at ``next_attempt_at``)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the receiver's HTTP status of the last attempt (None: no answer)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    #: why the last attempt failed (never the body)
    last_error: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInFailure(Base):
    """One failed console sign-in from a client address, kept for the throttle's window so that
    every web worker counts the same failures (``gateway.store.throttle``). Holds a keyed hash
    of the address, not the address."""

    __tablename__ = "console_sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_address", "address_hash", "failed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: HMAC-SHA256 of the client address
    address_hash: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _members(enum_class: type[E]) -> Any:
    """An attribute listener that turns an assigned string into its ``enum_class`` member, so an
    object's value has the same type before it is flushed as after it is read back."""

    def coerce(target: Any, value: Any, oldvalue: Any, initiator: Any) -> Any:
        return value if value is None or isinstance(value, enum_class) else enum_class(value)

    return coerce


for _mapper in Base.registry.mappers:
    for _key, _column in _mapper.columns.items():
        if isinstance(_column.type, Enum) and _column.type.enum_class is not None:
            event.listen(
                getattr(_mapper.class_, _key), "set", _members(_column.type.enum_class),
                retval=True,
            )  # fmt: skip
