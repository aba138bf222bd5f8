"""The event deliveries to a practice's scheduling system: ``/api/v1/events``."""

from __future__ import annotations

import re
from typing import Any

from flask import abort, jsonify, request

from gateway.core.errors import ValidationFailed
from gateway.store import event_outbox
from gateway.store.db import get_session
from gateway.store.models import EventDelivery, utcnow
from gateway.web.api.reminders import audit_event, bp, iso, practice_from, query_int

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_ID = 2**31 - 1
_WEBHOOK_ID = re.compile(r"^msg_[0-9a-f]{32}$")


@bp.get("/events")
def list_events() -> Any:
    practice = practice_from(request.args.get("practice"))
    errors: dict[str, str] = {}
    status = request.args.get("status") or None
    if status is not None and status not in event_outbox.STATUSES:
        errors["status"] = "one of " + ", ".join(event_outbox.STATUSES)
    limit = query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT, errors)
    before = query_int("before", None, 1, MAX_ID, errors)
    if errors:
        raise ValidationFailed(errors)
    assert limit is not None
    session = get_session()
    audit_event(session, "list_events", practice, status=status)
    session.commit()
    rows = event_outbox.page(session, practice.slug, status=status, limit=limit + 1,
                             before=before)  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(items=[event_json(row) for row in rows],
                   next_before=rows[-1].id if more else None)  # fmt: skip


@bp.post("/events/<webhook_id>/retry")
def retry_event(webhook_id: str) -> Any:
    practice = practice_from(request.args.get("practice"))
    if not _WEBHOOK_ID.fullmatch(webhook_id):
        abort(404, description=f"no event {webhook_id!r} in practice {practice.slug!r}")
    session = get_session()
    audit_event(session, "retry_event", practice, event=webhook_id)
    try:
        event = event_outbox.retry(session, practice.slug, webhook_id, utcnow())
    except LookupError:
        abort(404, description=f"no event {webhook_id!r} in practice {practice.slug!r}")
    except ValueError:
        event = event_outbox.get(session, practice.slug, webhook_id)
        assert event is not None
        return jsonify(error="already delivered", event=event_json(event)), 409
    return jsonify(event_json(event))


def event_json(event: EventDelivery) -> dict[str, Any]:
    return {
        "id": event.webhook_id,
        "seq": event.id,
        "practice": event.practice,
        "type": event.type,
        "timestamp": iso(event.occurred_at),
        "data": event.data,
        "status": event.status,
        "attempts": event.attempts,
        "next_attempt_at": iso(event.next_attempt_at) if event.status == "pending" else None,
        "last_attempt_at": iso(event.last_attempt_at),
        "last_status_code": event.last_status_code,
        "last_error": event.last_error,
        "delivered_at": iso(event.delivered_at),
        "created_at": iso(event.created_at),
    }


# --- OpenAPI --------------------------------------------------------------------------------------


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_ERRORS = {
    "type": "object",
    "properties": {"errors": {"type": "object", "additionalProperties": {"type": "string"}}},
    "required": ["errors"],
}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_PRACTICE = {
    "name": "practice", "in": "query", "schema": {"type": "string"},
    "description": "The practice's slug; optional when the token reaches only one practice",
}  # fmt: skip
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The `webhook-id` header, the same on every "
               "attempt: the receiver's idempotency key"},  # fmt: skip
        "seq": {"type": "integer", "description": "Order of writing; `before` pages by it"},
        "practice": {"type": "string"},
        "type": {"type": "string", "enum": list(event_outbox.TYPES)},
        "timestamp": {"type": "string", "format": "date-time",
                      "description": "When the change happened (the body's `timestamp`)"},
        "data": {"type": "object", "description": "The body's `data` (see the README)"},
        "status": {"type": "string", "enum": list(event_outbox.STATUSES),
                   "description": "pending: to be attempted (again); delivered: answered 2xx; "
                   "failed: the retry schedule is spent (POST .../retry attempts it again)"},
        "attempts": {"type": "integer", "minimum": 0},
        "next_attempt_at": _TIME_OR_NULL,
        "last_attempt_at": _TIME_OR_NULL,
        "last_status_code": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "delivered_at": _TIME_OR_NULL,
        "created_at": {"type": "string", "format": "date-time"},
    },
}  # fmt: skip
EVENT_SCHEMA["required"] = list(EVENT_SCHEMA["properties"])

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/events": {
        "get": {
            "summary": "The events sent (or being sent) to the practice's scheduling system, "
            "newest first",
            "parameters": [
                _PRACTICE,
                {"name": "status", "in": "query",
                 "schema": {"type": "string", "enum": list(event_outbox.STATUSES)}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT}},
                {"name": "before", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                 "description": "`next_before` of the previous page"},
            ],  # fmt: skip
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": EVENT_SCHEMA},
                            "next_before": {"type": ["integer", "null"]},
                        },
                        "required": ["items", "next_before"],
                    },
                    "A page of events",
                ),
                "401": _json(_ERROR, "Missing or invalid token"),
                "404": _json(_ERROR, "No such practice"),
                "422": _json(_ERRORS, "Bad status, limit or before; practice missing"),
            },
        }
    },
    "/api/v1/events/{webhook_id}/retry": {
        "post": {
            "summary": "Attempt a failed (or waiting) event again now, with the same webhook-id",
            "parameters": [
                {"name": "webhook_id", "in": "path", "required": True,
                 "schema": {"type": "string"},
                 "description": "The event's id (`msg_...`, its `webhook-id` header)"},
                _PRACTICE,
            ],  # fmt: skip
            "responses": {
                "200": _json(EVENT_SCHEMA, "Pending: the scheduler attempts it within seconds"),
                "401": _json(_ERROR, "Missing or invalid token"),
                "404": _json(_ERROR, "No such event or practice"),
                "409": _json(
                    {**_ERROR, "properties": {**_ERROR["properties"], "event": EVENT_SCHEMA},
                     "required": ["error", "event"]},
                    "Already delivered",
                ),  # fmt: skip
                "422": _json(_ERRORS, "Practice missing"),
            },
        }
    },
}
