"""The JSON API for the scheduling system and staff tools: ``/api/v1/...``, bearer tokens."""

from __future__ import annotations

import hmac
import math
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, jsonify, request

from gateway.config import Practice, current_settings
from gateway.core import gsm7, phone, policy, recipients
from gateway.core.domain import Category, ConsentStatus
from gateway.core.errors import Conflict, ValidationFailed
from gateway.core.reminder_request import ReminderRequest
from gateway.services import consent, reminders
from gateway.services.consent import ConsentState
from gateway.store import audit, contacts, outbox, privacy
from gateway.store.db import get_session
from gateway.store.models import ConsentEvent, OutboundMessage, utcnow
from gateway.web import log_context

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.errorhandler(ValidationFailed)
def _unprocessable(exc: ValidationFailed) -> Any:
    return jsonify(errors=exc.errors), 422


@bp.errorhandler(Conflict)
def _conflict(exc: Conflict) -> Any:
    return jsonify(error=str(exc)), 409


@bp.before_request
def _require_bearer_token() -> Any:
    if request.endpoint == "openapi.openapi":
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    supplied = token.strip().encode()
    matched = None
    if scheme.lower() == "bearer" and supplied:
        for known in current_settings().api_tokens:  # compare with every token: constant time
            if hmac.compare_digest(supplied, known.encode()):
                matched = known
    if matched is None:
        response = jsonify(error="missing or invalid bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
        return response, 401
    g.api_scope = current_settings().token_scopes.get(matched)
    g.actor = audit.token_fingerprint(matched)
    return None


def practice_from(value: str | None, *, field: str = "practice") -> Practice:
    """The practice a call names; optional when the token (or the gateway) has only one.

    A practice outside the token's scope is answered like one that does not exist (404), so a
    token cannot probe which practices, contacts or reminders exist elsewhere.
    """
    practices = current_settings().practices
    scope = g.get("api_scope")
    reachable = [slug for slug in practices if scope is None or slug in scope]
    if not value:
        if len(reachable) == 1:
            log_context.set_practice(reachable[0])
            return practices[reachable[0]]
        raise ValidationFailed({field: "required: more than one practice is configured"})
    if value not in reachable:
        abort(404, description=f"no practice {value!r}")
    log_context.set_practice(value)
    return practices[value]


def audit_event(
    session: Any, action: str, practice: Practice, phone: str | None = None, **details: Any
) -> None:
    """Record who did this (the calling token), in the caller's transaction."""
    audit.record(
        session, hash_key=current_settings().hash_key, actor=g.get("actor", "unknown"),
        action=action, practice=practice.slug, phone=phone, details=details,
    )  # fmt: skip


def normalized_phone(value: str, field: str = "phone") -> str:
    try:
        return phone.normalize(value)
    except phone.InvalidPhoneNumber as exc:
        raise ValidationFailed({field: str(exc)}) from None


def request_json() -> Any:
    """The request's JSON body, or None when it is not JSON (400 when it is nested too deeply
    to parse).

    Raises ValidationFailed (422) for values JSON can carry but no column can store: text with a
    NUL character (PostgreSQL refuses it) or an unpaired surrogate (``"\\ud800"``: not UTF-8),
    and the numbers NaN and Infinity (not JSON at all, though Python's parser accepts them).
    """
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # arrays or objects nested deeper than the parser goes
        abort(400, description="the body is nested too deeply")
    errors: dict[str, str] = {}
    pending: list[tuple[Any, str]] = [(payload, "body")]  # a loop, not recursion: any depth
    while pending:
        value, where = pending.pop()
        if isinstance(value, str):
            if "\x00" in value or not _encodable(value):
                errors[where] = "must not contain NUL characters or unpaired surrogates"
        elif isinstance(value, float):
            if not math.isfinite(value):
                errors[where] = "must be a finite number"
        elif isinstance(value, dict):
            for key, item in value.items():
                name = key if where == "body" else f"{where}.{key}"
                pending += [(key, name), (item, name)]
        elif isinstance(value, list):
            pending += [(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if errors:
        raise ValidationFailed(errors)
    return payload


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_object() -> dict[str, Any]:
    payload = request_json()
    if not isinstance(payload, dict):
        abort(400, description="the body must be a JSON object (Content-Type: application/json)")
    return dict(payload)


def query_int(
    name: str, default: int | None, low: int, high: int, errors: dict[str, str]
) -> int | None:
    """The query parameter ``name`` as a whole number from ``low`` to ``high``; ``default`` when
    absent. A bad value records ``errors[name]`` (the caller answers 422) and gives ``default``."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    # at most 10 digits: int() refuses strings of thousands of digits (ValueError)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not low <= int(raw) <= high:
        errors[name] = f"must be a whole number from {low} to {high}"
        return default
    return int(raw)


def past_instant(value: Any, field: str, errors: dict[str, str]) -> datetime:
    """An optional RFC 3339 instant not in the future (default: now)."""
    now = utcnow()
    if value is None:
        return now
    try:
        instant = reminders.parse_instant(value)
    except ValueError as exc:
        errors[field] = str(exc)
        return now
    if instant > now + timedelta(minutes=5):
        errors[field] = "is in the future"
    return instant


def state_json(state: ConsentState) -> dict[str, Any]:
    return {
        "status": state.status.value,
        "since": iso(state.since),
        "source": state.source,
        "event": event_json(state.event) if state.event else None,
    }


def event_json(event: ConsentEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "category": event.category,
        "action": event.action,
        "source": event.source,
        "occurred_at": iso(event.occurred_at),
        "recorded_at": iso(event.recorded_at),
        "evidence": event.evidence,
    }


def iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@bp.post("/reminders")
def create_reminder() -> Any:
    payload = request_json()
    if payload is None:
        return jsonify(error="the body must be JSON (Content-Type: application/json)"), 400
    scope = g.get("api_scope")
    if isinstance(payload, dict) and payload.get("practice") is None and scope and len(scope) == 1:
        payload = {**payload, "practice": next(iter(scope))}  # the token's only practice
    practice, reminder = reminders.parse(payload, current_settings())
    practice_from(practice.slug)  # outside the token's scope: 404, as for any call
    session = get_session()
    check_sendable(session, practice, reminder)
    audit_event(session, "enqueue_reminder", practice, reminder.phone,
                reminder=reminder.external_id)  # fmt: skip
    message, created = outbox.enqueue(session, reminder)
    response = jsonify(reminder_json(message))
    response.status_code = 201 if created else 200
    response.headers["Location"] = (
        f"/api/v1/reminders/{message.external_id}?practice={message.practice}"
    )
    return response


@bp.get("/reminders/<path:reminder_id>")
def get_reminder(reminder_id: str) -> Any:
    message = _reminder(reminder_id)
    session = get_session()
    audit_event(session, "read_reminder", current_settings().practices[message.practice],
                message.phone, reminder=reminder_id)  # fmt: skip
    session.commit()
    return jsonify(reminder_json(message))


@bp.delete("/reminders/<path:reminder_id>")
def cancel_reminder(reminder_id: str) -> Any:
    message = _reminder(reminder_id)
    audit_event(get_session(), "cancel_reminder", current_settings().practices[message.practice],
                message.phone, reminder=reminder_id)  # fmt: skip
    if not outbox.cancel(get_session(), message):
        return jsonify(error=f"too late to cancel: the reminder is {message.status}",
                       reminder=reminder_json(message)), 409  # fmt: skip
    return jsonify(reminder_json(message))


def check_sendable(session: Any, practice: Practice, reminder: ReminderRequest) -> None:
    """What can be known at enqueue: the patient's age, and the FCC exemption's length limit."""
    contact = contacts.get(session, practice.slug, reminder.phone)
    today = utcnow().astimezone(ZoneInfo(practice.time_zone)).date()
    minimum = practice.minimum_age
    born = contact.date_of_birth if contact else None
    if born and minimum is not None and recipients.age_on(born, today) < minimum:
        raise ValidationFailed(
            {"to": f"the patient is under the practice's minimum age ({minimum})"}
        )
    if reminder.category is not Category.TRANSACTIONAL:
        return
    state = consent.current(session, practice.slug, reminder.phone, (Category.TRANSACTIONAL,))
    if state[Category.TRANSACTIONAL].status is not ConsentStatus.IMPLIED:
        return  # express consent: the exemption's limits do not apply
    if privacy.is_suppressed(session, current_settings().hash_key, practice.slug,
                             reminder.phone, Category.TRANSACTIONAL.value):  # fmt: skip
        raise ValidationFailed({"to": "this number opted out and was erased: it is never texted"})
    language = (contact.language if contact else None) or practice.language
    text = gsm7.to_gsm7(reminders.render(reminder.template, reminder.params, practice, language,
                                         max_chars=policy.EXEMPT_MAX_CHARS))  # fmt: skip
    chars, segments = len(text), gsm7.segments(text)
    if chars > policy.EXEMPT_MAX_CHARS or segments > 1:
        raise ValidationFailed({
            "template": f"renders to {chars} characters in {segments} segment(s); care texts "
            f"sent without express consent must fit {policy.EXEMPT_MAX_CHARS} characters in "
            "one segment (FCC healthcare exemption): shorten the params (e.g. location)"
        })  # fmt: skip


def _reminder(reminder_id: str) -> OutboundMessage:
    practice = practice_from(request.args.get("practice"))
    # an id no reminder can have (enqueue checks the same pattern) is not looked up: a NUL
    # character in it would make PostgreSQL fail the query
    message = (
        outbox.get(get_session(), practice.slug, reminder_id)
        if reminders.is_reminder_id(reminder_id)
        else None
    )
    if message is None:
        abort(404, description=f"no reminder {reminder_id!r} in practice {practice.slug!r}")
    return message


def reminder_json(message: OutboundMessage) -> dict[str, Any]:
    return {
        "id": message.external_id,
        "practice": message.practice,
        "to": message.phone,
        "category": message.category,
        "template": message.template,
        "params": message.params,
        "send_at": iso(message.send_at),
        "expires_at": iso(message.expires_at),
        "status": message.status,
        "reason": message.reason,
        "attempts": message.attempts,
        "next_attempt_at": iso(message.next_attempt_at) if message.status == "scheduled" else None,
        "sent_at": iso(message.sent_at),
        "completed_at": iso(message.completed_at),
        "provider_sid": message.provider_sid,
        "error_code": message.error_code,
        "created_at": iso(message.created_at),
        "response": message.response,
        "responded_at": iso(message.responded_at),
    }
