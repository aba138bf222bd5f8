"""Staff review of inbound messages that may be revocations: ``/api/v1/reviews``."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, request

from gateway.config import current_settings
from gateway.core.errors import ValidationFailed
from gateway.services import review
from gateway.store.db import get_session
from gateway.store.models import InboundMessage, utcnow
from gateway.web.api.reminders import audit_event, bp, iso, practice_from, query_int, request_json

DEFAULT_LIMIT = 100
MAX_NOTE_CHARS = 1000
MAX_STAFF_CHARS = 128  # inbound_messages.reviewed_by
MAX_ID = 2**31 - 1  # inbound_messages.id: a 32-bit integer on PostgreSQL
_FIELDS = {"resolution", "staff", "note", "practice"}


@bp.get("/reviews")
def list_reviews() -> Any:
    practice = practice_from(request.args.get("practice"))
    errors: dict[str, str] = {}
    limit = query_int("limit", DEFAULT_LIMIT, 1, review.MAX_LIMIT, errors)
    before = query_int("before", None, 1, MAX_ID, errors)
    if errors:
        raise ValidationFailed(errors)
    assert limit is not None
    audit_event(get_session(), "list_reviews", practice)
    get_session().commit()
    try:
        page = review.open_items(get_session(), practice.slug, limit=limit, before_id=before)
    except review.ReviewNotFound:
        raise ValidationFailed({"before": "no review item with this id in the practice"}) from None
    # a full page: is there more? (asking for limit + 1 would exceed MAX_LIMIT at limit=500)
    more = len(page) == limit and review.open_items(
        get_session(), practice.slug, limit=1, before_id=page[-1].id
    )
    next_before = page[-1].id if more else None
    return jsonify(items=[item_json(item) for item in page], next_before=next_before)


@bp.post("/reviews/<int:inbound_id>")
def resolve_review(inbound_id: int) -> Any:
    payload = request_json()
    if payload is None:
        return jsonify(error="the body must be JSON (Content-Type: application/json)"), 400
    resolution, staff, note, errors = _parse(payload)
    body_practice = payload.get("practice") if isinstance(payload, dict) else None
    query_practice = request.args.get("practice")
    if body_practice is not None and query_practice and body_practice != query_practice:
        errors["practice"] = "the query and the body name different practices"
    try:
        practice = practice_from(query_practice or body_practice)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    if not 1 <= inbound_id <= MAX_ID:  # no such row; the database could not even compare it
        abort(404, description=f"no review item {inbound_id} in practice {practice.slug!r}")
    audit_event(get_session(), "resolve_review", practice, None, inbound_id=inbound_id,
                resolution=resolution, staff=staff)  # fmt: skip
    try:
        message = review.resolve(
            get_session(), current_settings(), practice=practice.slug, inbound_id=inbound_id,
            resolution=resolution, staff=staff, note=note, now=utcnow(),
        )  # fmt: skip
    except review.ReviewNotFound:
        abort(404, description=f"no review item {inbound_id} in practice {practice.slug!r}")
    return jsonify(resolved_json(message))


def _parse(payload: Any) -> tuple[str, str, str | None, dict[str, str]]:
    """The resolution, staff and note of a POST body, and an error per bad field."""
    if not isinstance(payload, dict):
        return "", "", None, {"body": "must be a JSON object"}
    errors = {name: "unknown field" for name in sorted(set(payload) - _FIELDS)}
    resolution = payload.get("resolution")
    if not isinstance(resolution, str) or resolution not in review.RESOLUTIONS:
        errors["resolution"] = "required: one of " + ", ".join(review.RESOLUTIONS)
    staff = payload.get("staff")
    if not isinstance(staff, str) or not staff.strip():
        errors["staff"] = "required: who resolved it (a name or staff id)"
    elif len(staff.strip()) > MAX_STAFF_CHARS:
        errors["staff"] = f"longer than {MAX_STAFF_CHARS} characters"
    note = payload.get("note")
    if note is not None and not isinstance(note, str):
        errors["note"] = "must be a string or null"
    elif note is not None and len(note) > MAX_NOTE_CHARS:
        errors["note"] = f"longer than {MAX_NOTE_CHARS} characters"
    if "practice" in payload and not isinstance(payload["practice"], str):
        errors["practice"] = "must be a string"
    if errors:
        return "", "", None, errors
    return resolution, staff.strip(), (note.strip() or None) if note else None, {}


def item_json(message: InboundMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "practice": message.practice,
        "phone": message.phone,
        "body": message.body,
        "received_at": iso(message.received_at),
        "sender": message.sender,
        "intent": message.intent,
        "language": message.language,
        "rule": message.rule,
    }


def resolved_json(message: InboundMessage) -> dict[str, Any]:
    return {
        **item_json(message),
        "review_status": message.review_status,
        "reviewed_at": iso(message.reviewed_at),
        "reviewed_by": message.reviewed_by,
        "review_note": message.review_note,
    }


# --- OpenAPI --------------------------------------------------------------------------------------


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = {"$ref": "#/components/schemas/Error"}
_ERRORS = {"$ref": "#/components/schemas/ValidationErrors"}
_TIME = {"type": "string", "format": "date-time"}
_ITEM_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer", "description": "The inbound message's id"},
    "practice": {"type": "string"},
    "phone": {"type": "string", "description": "The patient's number, E.164"},
    "body": {"type": "string", "description": "The text as the patient sent it"},
    "received_at": _TIME,
    "sender": {"type": "string", "description": "The practice's number the patient texted"},
    "intent": {"type": "string", "enum": ["possible_opt_out"]},
    "language": {"type": "string", "enum": ["en", "es"]},
    "rule": {
        "type": ["string", "null"],
        "description": "Why it is held for review: the keyword rule or guard that matched "
        "(`guard.question`, `guard.negation`, `mention.optout_word`, ...; see the README)",
    },
}
_ITEM = {
    "type": "object",
    "properties": _ITEM_PROPERTIES,
    "required": list(_ITEM_PROPERTIES),
}
_RESOLVED_PROPERTIES: dict[str, Any] = {
    **_ITEM_PROPERTIES,
    "review_status": {"type": "string", "enum": ["opted_out", "dismissed"]},
    "reviewed_at": _TIME,
    "reviewed_by": {"type": "string"},
    "review_note": {"type": ["string", "null"]},
}
_RESOLVED = {
    "type": "object",
    "properties": _RESOLVED_PROPERTIES,
    "required": list(_RESOLVED_PROPERTIES),
}

#: OpenAPI path items for these routes, merged into gateway.web.openapi.DOCUMENT
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/reviews": {
        "get": {
            "summary": "Open possible opt-outs awaiting staff review, oldest first",
            "description": "Texts that mention stopping but are ambiguous (\"I'll stop by at "
            '3", "wrong number") changed no consent; staff read each and resolve it. Pages '
            "follow one another: pass `next_before` as `before` for the next page (`null`: "
            "the last page).",
            "parameters": [
                {"name": "practice", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": review.MAX_LIMIT,
                        "default": DEFAULT_LIMIT,
                    },
                },
                {
                    "name": "before",
                    "in": "query",
                    "description": "The `next_before` of the previous page",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": _ITEM},
                            "next_before": {"type": ["integer", "null"]},
                        },
                        "required": ["items", "next_before"],
                    },
                    "One page of open items",
                ),
                "401": _json(_ERROR, "Missing or invalid token"),
                "404": _json(_ERROR, "No such practice"),
                "422": _json(_ERRORS, "Bad limit or cursor, or practice missing"),
            },
        }
    },
    "/api/v1/reviews/{inbound_id}": {
        "parameters": [
            {
                "name": "inbound_id",
                "in": "path",
                "required": True,
                "description": "The item's `id`",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            },
            {"name": "practice", "in": "query", "schema": {"type": "string"}},
        ],
        "post": {
            "summary": "Resolve an open item: a revocation (opt_out) or not (dismiss)",
            "description": "`opt_out` revokes every category the texted number carries (as a "
            "STOP to it would), source `staff`, as of the time the patient texted. `dismiss` "
            "changes no consent. An item is resolved once.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["resolution", "staff"],
                            "properties": {
                                "resolution": {"type": "string", "enum": ["opt_out", "dismiss"]},
                                "staff": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": MAX_STAFF_CHARS,
                                    "description": "Who resolved it",
                                },
                                "note": {
                                    "type": ["string", "null"],
                                    "maxLength": MAX_NOTE_CHARS,
                                },
                                "practice": {
                                    "type": "string",
                                    "description": "Instead of the query parameter",
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_RESOLVED, "Resolved"),
                "400": _json(_ERROR, "Not JSON"),
                "401": _json(_ERROR, "Missing or invalid token"),
                "404": _json(_ERROR, "No such review item in the practice, or no such practice"),
                "409": _json(_ERROR, "Already resolved"),
                "413": _json(_ERROR, "The body is larger than 256 KiB"),
                "422": _json(_ERRORS, "Invalid fields, with a reason for each"),
            },
        },
    },
}
