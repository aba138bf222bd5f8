"""The JSON API's bodies and query parameters as pydantic models: each field described once.

spectree validates each request against these models and writes the OpenAPI document from them
(``gateway.web.openapi``). A request that fails its schema is answered ``422
{"errors": {field: reason}}``: ``reasons`` names each field as the caller spelt it (``params.x``
for a template parameter, ``body`` for a body that is no object) with one reason, which is

- the validator's own words for a value it refused (an error of type ``reason``);
- ``unknown field`` (``unknown parameter`` inside ``params``) for a name the model does not have;
- the model's ``reasons[field]`` for any other problem of that field (missing, wrong type, not
  one of the allowed values, out of range), so a caller reads what the field must be;
- otherwise a generic one (``required``, ``longer than N characters``, ...).

What depends on the practice or on stored records (the practice itself, the template's
parameters, the patient's age, the FCC length limit, ...) is checked after the schema, by the
view and the services.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway.core import phone as phones
from gateway.core.domain import Action, Category, ConsentStatus, OutboxStatus, Source, Unreachable
from gateway.services import review, sms_templates
from gateway.store import event_outbox

#: a reminder's id: the caller's idempotency key per practice
REMINDER_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"
_REMINDER_ID = re.compile(REMINDER_ID)
MAX_PARAM_CHARS = 200
#: how consent taken outside SMS reached the practice (this API and the staff console)
CONSENT_CHANNELS = ("phone", "front_desk", "email", "mail", "other")
MAX_ID = 2**31 - 1  # a 32-bit integer column on PostgreSQL
DEFAULT_LIMIT = 100
#: an instant given as "now" may be this far ahead of the gateway's clock
CLOCK_SKEW = timedelta(minutes=5)


def is_reminder_id(value: Any) -> bool:
    """Whether ``value`` is an id a caller may give a reminder (1-128 characters of a safe set)."""
    return isinstance(value, str) and _REMINDER_ID.fullmatch(value) is not None


# --- errors ---------------------------------------------------------------------------------------


def _reason(text: str) -> PydanticCustomError:
    """The validator's own reason, reported as it is."""
    return PydanticCustomError("reason", "{reason}", {"reason": text})


def _invalid(text: str) -> PydanticCustomError:
    """A value of the wrong kind: reported as the model's ``reasons[field]`` when it has one."""
    return PydanticCustomError("invalid", "{reason}", {"reason": text})


#: text with a NUL character or an unpaired surrogate ("\ud800", not UTF-8): PostgreSQL refuses it
NOT_STORABLE = "must not contain NUL characters or unpaired surrogates"

#: reasons for pydantic's own error types, where its message is not the gateway's
_GENERIC = {
    "missing": "required",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}

_MODELS: dict[str, type[BaseModel]] = {}


class _Registered(BaseModel):
    #: a reason per field for any problem that has no reason of its own (see the module's doc)
    reasons: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _MODELS[cls.__name__] = cls


def reasons(error: ValidationError) -> dict[str, str]:
    """``{field: reason}`` for a request model's ValidationError: the first problem per field,
    in the model's field order (see the module's doc)."""
    model = _MODELS.get(error.title)
    table = model.reasons if model is not None else {}
    found: dict[str, str] = {}
    for item in error.errors(include_url=False, include_input=False):
        loc = [str(part) for part in item["loc"]]
        field = ".".join(loc) or "body"
        if field in found:
            continue
        kind, context = item["type"], item.get("ctx") or {}
        if kind == "reason":
            found[field] = str(context["reason"])
        elif kind == "string_unicode":  # pydantic refuses unpaired surrogates itself
            found[field] = NOT_STORABLE
        elif kind == "extra_forbidden":
            found[field] = "unknown parameter" if len(loc) > 1 else "unknown field"
        elif field == "body":
            found[field] = "must be a JSON object"
        elif kind in ("string_too_long", "too_long"):
            found[field] = f"longer than {context['max_length']} characters"
        elif field in table:
            found[field] = table[field]
        elif kind == "invalid":
            found[field] = str(context["reason"])
        else:
            found[field] = _GENERIC.get(kind, item["msg"])
    return found


# --- field types ----------------------------------------------------------------------------------


def _storable(text: str) -> str:
    # PostgreSQL refuses NUL in text; an unpaired surrogate ("\ud800") is not UTF-8
    if "\x00" in text:
        raise _reason(NOT_STORABLE)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _reason(NOT_STORABLE) from None
    return text


#: text a column can store: no NUL character, no unpaired surrogate
Text = Annotated[str, AfterValidator(_storable)]


def _nonblank(text: str) -> str:
    if not text.strip():
        raise _invalid("must not be blank")
    return text.strip()


#: text with something besides spaces, stripped
Name = Annotated[Text, AfterValidator(_nonblank)]


def parse_instant(value: Any) -> datetime:
    """An RFC 3339 timestamp with an offset, as aware UTC; raises ValueError with the reason."""
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", value):
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-03-03T14:30:00-05:00")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-03-03T14:30:00-05:00") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("needs a UTC offset (Z or ±hh:mm)")
    try:
        return instant.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise ValueError("is out of range (years 0001 to 9999 in UTC)") from None


def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _invalid("must be an RFC 3339 timestamp, e.g. 2026-03-03T14:30:00-05:00")
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise _reason(str(exc)) from None


#: an RFC 3339 timestamp with an offset (``2026-03-03T14:30:00-05:00``), as aware UTC
Instant = Annotated[
    datetime,
    PlainValidator(_instant, json_schema_input_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _not_ahead(instant: datetime) -> datetime:
    if instant > datetime.now(UTC) + CLOCK_SKEW:
        raise _reason("is in the future")
    return instant


#: an instant that has happened (the gateway's clock, give or take ``CLOCK_SKEW``)
PastInstant = Annotated[Instant, AfterValidator(_not_ahead)]


def _date(value: Any) -> date:
    if not isinstance(value, str):
        raise _invalid("must be a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _reason("must be a date, YYYY-MM-DD") from None


#: a calendar date, ``YYYY-MM-DD``
IsoDate = Annotated[
    date,
    PlainValidator(_date, json_schema_input_type=str),
    WithJsonSchema({"type": "string", "format": "date"}),
]


def _phone(value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid("not a valid phone number")
    try:
        return phones.normalize(value)
    except phones.InvalidPhoneNumber as exc:  # SwitchboardNumber: the reason names the extension
        raise _reason(str(exc)) from None


#: a phone number as a person types it, normalised to E.164
Phone = Annotated[
    str,
    PlainValidator(_phone, json_schema_input_type=str),
    WithJsonSchema({"type": "string", "description": "Any format; normalised to E.164"}),
]


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _reason("unknown IANA time zone") from None
    return name


def _ip(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _invalid("not an IP address") from None


IpAddress = Annotated[
    str,
    PlainValidator(_ip, json_schema_input_type=str),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]


def _param(value: Any) -> str | int | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _reason("must be a string or a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _reason("must be a finite number")
    if isinstance(value, str):
        _storable(value)
    if len(str(value)) > MAX_PARAM_CHARS:
        raise _reason(f"longer than {MAX_PARAM_CHARS} characters")
    return value


#: a template parameter's value: text or a number
ParamValue = Annotated[
    str | int | float,
    PlainValidator(_param),
    WithJsonSchema(
        {"oneOf": [{"type": "string", "maxLength": MAX_PARAM_CHARS}, {"type": "number"}]}
    ),  # fmt: skip
]


def _digits(value: Any) -> Any:
    # at most 10 digits: int() refuses strings of thousands of digits (ValueError)
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 10):
        raise _invalid("must be a whole number")
    return value


#: a whole number in a query string: digits only
QueryInt = Annotated[int, BeforeValidator(_digits)]


# --- request bodies -------------------------------------------------------------------------------


class Body(_Registered):
    """A JSON request body: an object of these fields only, each of its declared type."""

    model_config = ConfigDict(strict=True, extra="forbid")


def _enqueueable() -> dict[str, sms_templates.TemplateSpec]:
    return {name: spec for name, spec in sms_templates.catalog().items() if spec.enqueueable}


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # absent, never null


def _params_model() -> type[BaseModel]:
    """Every parameter of the templates the API may enqueue; a datetime one as an Instant."""
    fields: dict[str, Any] = {}
    for spec in _enqueueable().values():
        for name in sorted(spec.params):
            kind = Instant if name in spec.datetimes else ParamValue
            users = [s.name for s in _enqueueable().values() if name in s.params]
            fields[name] = (kind, Field(default=None, description="Of " + ", ".join(users),
                                        json_schema_extra=_no_default))  # fmt: skip
    needs = "; ".join(
        f"{spec.name} needs {', '.join(sorted(spec.required)) or 'nothing'}"
        + (f" and may have {', '.join(sorted(spec.optional))}" if spec.optional else "")
        for spec in _enqueueable().values()
    )
    return create_model(
        "ReminderParams",
        __config__=ConfigDict(strict=True, extra="forbid"),
        __doc__=f"The template's parameters: {needs}.",
        **fields,
    )


ReminderParams = _params_model()
_TEMPLATES = tuple(sorted(_enqueueable()))
TemplateName = Literal[_TEMPLATES]  # type: ignore[valid-type]
CategoryName = Literal[tuple(c.value for c in Category)]  # type: ignore[valid-type]


class ReminderBody(Body):
    """POST /api/v1/reminders: one message to enqueue."""

    id: str = Field(pattern=REMINDER_ID, description="The caller's id; the idempotency key "
                    "per practice")  # fmt: skip
    to: Phone = Field(description="The patient's number in any format; normalised to E.164")
    send_at: Instant = Field(description="RFC 3339 with an offset")
    expires_at: Instant | None = Field(
        default=None, description="Never sent after this (e.g. the appointment); after send_at"
    )
    template: TemplateName = Field(description=(
        "appointment_reminder (transactional) needs `appointment_time` and may have "
        "`location`; practice_news (marketing) needs `message`"
    ))  # fmt: skip
    params: ReminderParams = Field(default_factory=ReminderParams)  # type: ignore[valid-type]
    practice: Text | None = Field(
        default=None, description="The practice's slug; optional when the token (or the "
        "gateway) has only one",
    )  # fmt: skip
    category: CategoryName = Field(default="transactional", description="The template's category")

    reasons: ClassVar[dict[str, str]] = {
        "id": "required: 1-128 characters, letters, digits and . _ : @ / -",
        "to": "required: the patient's phone number",
        "send_at": "required: an RFC 3339 timestamp with an offset",
        "template": f"unknown template (known: {', '.join(_TEMPLATES)})",
        "params": "must be an object",
        "category": "must be one of " + ", ".join(c.value for c in Category),
        "practice": "unknown practice",
    }

    @field_validator("to")
    @classmethod
    def _textable(cls, number: str) -> str:
        reason = phones.not_textable_reason(number)
        if reason:
            raise _reason(f"cannot receive text messages: {reason}")
        return number

    @field_validator("expires_at")
    @classmethod
    def _after_send_at(cls, expires_at: datetime | None, info: ValidationInfo) -> datetime | None:
        send_at = info.data.get("send_at")
        if expires_at is not None and send_at is not None and expires_at <= send_at:
            raise _reason("must be after send_at")
        return expires_at

    def template_params(self) -> dict[str, Any]:
        """The parameters given, datetimes as ISO 8601 text in UTC (as stored)."""
        given = self.params.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
        return {name: value.isoformat() if isinstance(value, datetime) else value
                for name, value in given.items()}  # fmt: skip


class ContactUpdate(Body):
    """PATCH /api/v1/contacts/{phone}: the settings to change (``null`` clears one)."""

    practice: Text | None = None
    language: Literal["en", "es"] | None = None
    time_zone: Annotated[Text, AfterValidator(_time_zone)] | None = Field(
        default=None, description="IANA, e.g. America/Chicago"
    )
    do_not_text: bool = Field(default=False, description="HIPAA confidential communications: "
                              "text only an alternate number, or nothing")  # fmt: skip
    alternate_phone: Phone | None = None
    guardian_phone: Phone | None = None
    date_of_birth: IsoDate | None = None

    reasons: ClassVar[dict[str, str]] = {
        "language": "must be en or es",
        "do_not_text": "must be true or false",
    }

    @field_validator("date_of_birth")
    @classmethod
    def _born(cls, born: date | None) -> date | None:
        if born is not None and born > date.today():
            raise _reason("is in the future")
        return born


class ConsentChange(Body):
    """POST /api/v1/contacts/{phone}/consent: an opt-in or opt-out taken outside SMS."""

    practice: Text | None = None
    category: CategoryName
    action: Literal["opt_in", "opt_out"] = Field(
        description="A marketing opt_in needs the double opt-in (/marketing-consent)"
    )
    channel: Literal[CONSENT_CHANNELS]  # type: ignore[valid-type]
    staff: Name = Field(max_length=128, description="Who took it")
    note: Text | None = Field(default=None, max_length=1000)
    occurred_at: PastInstant | None = Field(default=None, description="Default now")

    reasons: ClassVar[dict[str, str]] = {
        "category": "must be transactional or marketing",
        "action": "must be opt_in or opt_out",
        "channel": "must be one of " + ", ".join(CONSENT_CHANNELS),
        "staff": "required: who took it (up to 128 characters)",
        "note": "must be text of at most 1000 characters",
    }

    @field_validator("action")
    @classmethod
    def _not_marketing_opt_in(cls, action: str, info: ValidationInfo) -> str:
        if action == "opt_in" and info.data.get("category") == Category.MARKETING.value:
            raise _reason(
                "marketing needs express written consent: record it with "
                "POST /api/v1/contacts/<phone>/marketing-consent (double opt-in)"
            )
        return action


class MarketingConsent(Body):
    """POST /api/v1/contacts/{phone}/marketing-consent: a web form's express written consent."""

    practice: Text | None = None
    disclosure: Name = Field(max_length=4000, description="The consent text the patient saw")
    page_url: Text = Field(pattern=r"^https?://\S+$", json_schema_extra={"format": "uri"})
    ip: IpAddress = Field(description="The patient's IP address")
    user_agent: Text | None = Field(default=None, max_length=1000)
    consented_at: PastInstant | None = Field(default=None, description="Default now")
    date_of_birth: IsoDate | None = None
    adult_attested: bool | None = Field(
        default=None, description="Must be true (an 18+ attestation) without a birth date"
    )

    reasons: ClassVar[dict[str, str]] = {
        "disclosure": "required: the consent text the patient saw (up to 4000 characters)",
        "page_url": "required: the http(s) URL of the form",
        "ip": "required: the patient's IP address",
        "user_agent": "must be text of at most 1000 characters",
    }


class ReviewResolution(Body):
    """POST /api/v1/reviews/{inbound_id}: a revocation (opt_out) or not (dismiss)."""

    resolution: Literal[tuple(review.RESOLUTIONS)]  # type: ignore[valid-type]
    staff: Name = Field(max_length=128, description="Who resolved it")  # reviewed_by
    note: Text | None = Field(default=None, max_length=1000)
    practice: Text | None = Field(default=None, description="Instead of the query parameter")

    reasons: ClassVar[dict[str, str]] = {
        "resolution": "required: one of " + ", ".join(review.RESOLUTIONS),
        "staff": "required: who resolved it (a name or staff id)",
        "note": "must be a string or null",
    }

    @field_validator("note")
    @classmethod
    def _stripped(cls, note: str | None) -> str | None:
        return (note.strip() or None) if note else None


# --- query parameters -----------------------------------------------------------------------------


class Query(_Registered):
    """Query parameters; an empty one (``?limit=``) counts as absent, of a repeated one the
    first counts, others are ignored.

    A parameter that may be absent defaults to None without being nullable: a query string has
    no null."""

    model_config = ConfigDict(extra="ignore")

    practice: str = Field(  # type: ignore[assignment]
        default=None,
        description="The practice's slug; optional when the token reaches only one practice",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        firsts = {name: value[0] if isinstance(value, list) else value
                  for name, value in data.items()}  # fmt: skip
        return {name: value for name, value in firsts.items() if value != ""}


class PracticeQuery(Query):
    """The practice a call names."""


class ReviewQuery(Query):
    """GET /api/v1/reviews: a page of open items."""

    limit: QueryInt = Field(default=DEFAULT_LIMIT, ge=1, le=review.MAX_LIMIT)
    before: QueryInt = Field(  # type: ignore[assignment]
        default=None, ge=1, le=MAX_ID, description="The `next_before` of the previous page"
    )

    reasons: ClassVar[dict[str, str]] = {
        "limit": f"must be a whole number from 1 to {review.MAX_LIMIT}",
        "before": f"must be a whole number from 1 to {MAX_ID}",
    }


EVENTS_MAX_LIMIT = 500


class EventQuery(Query):
    """GET /api/v1/events: a page of events, newest first."""

    status: Literal[event_outbox.STATUSES] = None  # type: ignore[valid-type,assignment]
    limit: QueryInt = Field(default=DEFAULT_LIMIT, ge=1, le=EVENTS_MAX_LIMIT)
    before: QueryInt = Field(  # type: ignore[assignment]
        default=None, ge=1, le=MAX_ID, description="The `next_before` of the previous page"
    )

    reasons: ClassVar[dict[str, str]] = {
        "status": "one of " + ", ".join(event_outbox.STATUSES),
        "limit": f"must be a whole number from 1 to {EVENTS_MAX_LIMIT}",
        "before": f"must be a whole number from 1 to {MAX_ID}",
    }


# --- responses ------------------------------------------------------------------------------------
# Every field is always present (null when it has no value): no defaults.


class Error(BaseModel):
    error: str


class ValidationErrors(BaseModel):
    """A reason per field; nested fields as ``params.location``, the body itself as ``body``."""

    errors: dict[str, str]


class ConsentEvent(BaseModel):
    id: int
    category: Category
    action: Action = Field(description="`opt_in_requested`: a web form's consent awaiting YES")
    source: Source
    occurred_at: datetime
    recorded_at: datetime
    evidence: dict[str, Any]


class ConsentState(BaseModel):
    status: ConsentStatus
    since: datetime | None
    source: Source | None
    event: ConsentEvent | None


class Reminder(BaseModel):
    id: str
    practice: str
    to: str
    category: Category
    template: str
    params: dict[str, Any]
    send_at: datetime
    expires_at: datetime | None
    status: OutboxStatus
    reason: str | None = Field(description="Why it was skipped (opted_out, expired, no_consent, "
                               "not_mobile, invalid_number, no_sender), is being retried, "
                               "or failed")  # fmt: skip
    attempts: int
    next_attempt_at: datetime | None
    sent_at: datetime | None
    completed_at: datetime | None
    provider_sid: str | None
    error_code: int | None
    created_at: datetime
    response: Literal["confirmed", "reschedule_requested", None] = Field(description=(
        "The patient's answer to an appointment reminder that invited one (`confirmations = "
        "true`): C confirmed, R asked to reschedule; null: no answer"
    ))  # fmt: skip
    responded_at: datetime | None


class ReminderConflict(BaseModel):
    error: str
    reminder: Reminder


class ContactConsent(BaseModel):
    transactional: ConsentState
    marketing: ConsentState


class Contact(BaseModel):
    phone: str = Field(description="E.164")
    practice: str
    known: bool = Field(description="The practice has a record")
    language: Literal["en", "es", None]
    time_zone: str | None
    alternate_phone: str | None
    date_of_birth: date | None
    guardian_phone: str | None
    do_not_text: bool
    unreachable: Unreachable | None = Field(description="Twilio said the number cannot receive SMS")
    consent: ContactConsent


class ErasureCounts(BaseModel):
    suppressed_categories: int = Field(ge=0)
    cancelled_reminders: int = Field(ge=0)
    anonymised_messages: int = Field(ge=0)
    deleted_inbound_messages: int = Field(ge=0)
    kept_consent_events: int = Field(ge=0)


class Erased(BaseModel):
    erased: ErasureCounts


class ConsentSummary(BaseModel):
    status: ConsentStatus
    since: datetime | None
    source: Source | None


class Export(BaseModel):
    exported_at: datetime
    practice: str
    phone: str
    contact: dict[str, Any] | None
    consent: dict[str, ConsentSummary]
    consent_events: list[ConsentEvent]
    inbound_messages: list[dict[str, Any]]
    outbound_messages: list[dict[str, Any]]


class MarketingRequested(BaseModel):
    consent: ConsentState
    confirmation: Reminder | None = Field(
        description="The queued text asking for YES (null: nothing sent)"
    )


class ReviewItem(BaseModel):
    id: int = Field(description="The inbound message's id")
    practice: str
    phone: str = Field(description="The patient's number, E.164")
    body: str = Field(description="The text as the patient sent it")
    received_at: datetime
    sender: str = Field(description="The practice's number the patient texted")
    intent: Literal["possible_opt_out"]
    language: Literal["en", "es"]
    rule: str | None = Field(description=(
        "Why it is held for review: the keyword rule or guard that matched (`guard.question`, "
        "`guard.negation`, `mention.optout_word`, ...; see the README)"
    ))  # fmt: skip


class ReviewPage(BaseModel):
    items: list[ReviewItem]
    next_before: int | None


class ResolvedReview(ReviewItem):
    review_status: Literal["opted_out", "dismissed"]
    reviewed_at: datetime
    reviewed_by: str
    review_note: str | None


class Event(BaseModel):
    id: str = Field(description="The `webhook-id` header, the same on every attempt: the "
                    "receiver's idempotency key")  # fmt: skip
    seq: int = Field(description="Order of writing; `before` pages by it")
    practice: str
    type: Literal[event_outbox.TYPES]  # type: ignore[valid-type]
    timestamp: datetime = Field(description="When the change happened (the body's `timestamp`)")
    data: dict[str, Any] = Field(description="The body's `data` (see the README)")
    status: Literal[event_outbox.STATUSES] = Field(description=(  # type: ignore[valid-type]
        "pending: to be attempted (again); delivered: answered 2xx; failed: the retry schedule "
        "is spent (POST .../retry attempts it again)"
    ))  # fmt: skip
    attempts: int = Field(ge=0)
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class EventPage(BaseModel):
    items: list[Event]
    next_before: int | None


class EventConflict(BaseModel):
    error: str
    event: Event


class PracticeQueue(BaseModel):
    overdue: int
    alert_hours: float


class ReviewQueueHealth(BaseModel):
    """Overdue possible opt-outs (status `attention`): a count; per practice only with an API
    bearer token (the token's practices)."""

    overdue: int
    practices: dict[str, PracticeQueue] | None = None


class Health(BaseModel):
    status: Literal["ok", "attention"]
    database: Literal["ok"]
    review_queue: ReviewQueueHealth | None = None


class Unavailable(BaseModel):
    status: Literal["unavailable"]
    database: Literal["unreachable", "error"]
