"""Reminders over the API: ``/api/v1/reminders``, enqueued by the scheduling system."""

from __future__ import annotations

from typing import Any

from flask import abort, g, jsonify, request

from gateway.config import Practice, current_settings
from gateway.core.domain import Category
from gateway.core.errors import ValidationFailed
from gateway.core.reminder_request import ReminderRequest
from gateway.services import reminders
from gateway.store import outbox
from gateway.store.db import get_session
from gateway.store.models import OutboundMessage, utcnow
from gateway.web.api.common import (
    api_blueprint,
    audit_event,
    iso,
    json_body,
    practice_from,
    reject_invalid,
)
from gateway.web.api.schemas import (
    Error,
    PracticeQuery,
    Reminder,
    ReminderBody,
    ReminderConflict,
    ValidationErrors,
    is_reminder_id,
)
from gateway.web.openapi import answers, spec

bp = api_blueprint("reminders", __name__)


def reminder_practice() -> Practice:
    """The practice a POST /reminders body names: the token's only practice, or the gateway's
    only one, when it names none. Raises ValidationFailed (``practice``) when it names none of
    several, or one the gateway does not have."""
    body = request.get_json(silent=True)
    named = body.get("practice") if isinstance(body, dict) else None
    scope = g.get("api_scope")
    if named is None and scope and len(scope) == 1:
        named = next(iter(scope))  # the token's only practice
    practices = current_settings().practices
    if named is None:
        if len(practices) == 1:
            return next(iter(practices.values()))
        raise ValidationFailed({"practice": "required: more than one practice is configured"})
    if not isinstance(named, str) or named not in practices:
        raise ValidationFailed({"practice": "unknown practice"})
    return practices[named]


@bp.post("/reminders")
@json_body()
@spec.validate(
    resp=answers(
        body=True,
        HTTP_201=(Reminder, "Created"),
        HTTP_200=(Reminder, "Identical replay"),
        HTTP_404=(Error, "The practice is outside the token's scope"),
        HTTP_409=(Error, "The same id with a different body"),
        HTTP_422=(
            ValidationErrors,
            "Invalid fields, with a reason for each; also an unknown "
            "practice, and a patient under the practice's minimum age",
        ),
    ),
    before=reject_invalid(reminder_practice),
)
def create_reminder(json: ReminderBody) -> Any:
    """Enqueue one message"""
    practice = practice_from(reminder_practice().slug)  # outside the token's scope: 404
    reminder = ReminderRequest(
        external_id=json.id,
        practice=practice.slug,
        phone=json.to,
        send_at=json.send_at,
        expires_at=json.expires_at,
        template=json.template,
        params=json.template_params(),
        category=Category(json.category),
    )
    session = get_session()
    reminders.admit(session, current_settings(), practice, reminder, now=utcnow())
    audit_event(session, "enqueue_reminder", practice, reminder.phone,
                reminder=reminder.external_id)  # fmt: skip
    message, created = outbox.enqueue(session, reminder)
    response = jsonify(reminder_json(message))
    response.status_code = 201 if created else 200
    response.headers["Location"] = (
        f"/api/v1/reminders/{message.external_id}?practice={message.practice}"
    )
    return response


_ID = {"id": "The id the reminder was enqueued with"}


@bp.get("/reminders/<path:id>")
@spec.validate(
    resp=answers(
        HTTP_200=(Reminder, "Its state"), HTTP_404=(Error, "No such reminder or practice")
    ),  # fmt: skip
    path_parameter_descriptions=_ID,
)
def get_reminder(id: str, query: PracticeQuery) -> Any:  # noqa: A002 (the path's name)
    """A reminder's state"""
    message = _reminder(id, query)
    session = get_session()
    audit_event(session, "read_reminder", current_settings().practices[message.practice],
                message.phone, reminder=id)  # fmt: skip
    session.commit()
    return jsonify(reminder_json(message))


@bp.delete("/reminders/<path:id>")
@spec.validate(
    resp=answers(
        HTTP_200=(Reminder, "Cancelled"),
        HTTP_404=(Error, "No such reminder or practice"),
        HTTP_409=(ReminderConflict, "Too late: already sent or finished"),
    ),
    path_parameter_descriptions=_ID,
)
def cancel_reminder(id: str, query: PracticeQuery) -> Any:  # noqa: A002 (the path's name)
    """Cancel a reminder not yet sent (idempotent)"""
    message = _reminder(id, query)
    audit_event(get_session(), "cancel_reminder", current_settings().practices[message.practice],
                message.phone, reminder=id)  # fmt: skip
    if not outbox.cancel(get_session(), message):
        return jsonify(error=f"too late to cancel: the reminder is {message.status}",
                       reminder=reminder_json(message)), 409  # fmt: skip
    return jsonify(reminder_json(message))


def _reminder(reminder_id: str, query: PracticeQuery) -> OutboundMessage:
    practice = practice_from(query.practice)
    # an id no reminder can have (enqueue checks the same pattern) is not looked up: a NUL
    # character in it would make PostgreSQL fail the query
    message = (
        outbox.get(get_session(), practice.slug, reminder_id)
        if is_reminder_id(reminder_id)
        else None
    )
    if message is None:
        abort(404, description=f"no reminder {reminder_id!r} in practice {practice.slug!r}")
    return message


def reminder_json(message: OutboundMessage) -> dict[str, Any]:
    """The API's ``Reminder`` (``schemas.Reminder``) of a stored message."""
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
