"""The OpenAPI 3.1 description of the JSON API, served at ``GET /api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from gateway.core.domain import Action, Category, OutboxStatus, Source, Unreachable
from gateway.services.reminders import MAX_PARAM_CHARS
from gateway.web.api import events as events_api
from gateway.web.api import reviews as review_api

bp = Blueprint("openapi", __name__)

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
_ERRORS = {
    "type": "object",
    "properties": {"errors": {"type": "object", "additionalProperties": {"type": "string"}}},
    "required": ["errors"],
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _values(enum: Any) -> list[str]:
    return [member.value for member in enum]


_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_TEXT_OR_NULL = {"type": ["string", "null"]}
_CATEGORY = {"type": "string", "enum": _values(Category)}
_PARAM_VALUE = {"oneOf": [{"type": "string", "maxLength": MAX_PARAM_CHARS}, {"type": "number"}]}
#: answers of every operation with a JSON body
_BODY_ERRORS = {
    "413": _json(_ERROR, "The body is larger than 256 KiB"),
}


_CONSENT_STATE = {
    "type": "object",
    "properties": {
        "status": {
            "type": "string",
            "enum": ["implied", "none", "pending", "opted_in", "opted_out"],
        },
        "since": _TIME_OR_NULL,
        "source": {"type": ["string", "null"], "enum": [*_values(Source), None]},
        "event": {"oneOf": [{"$ref": "#/components/schemas/ConsentEvent"}, {"type": "null"}]},
    },
    "required": ["status", "since", "source", "event"],
}

_PHONE = {
    "name": "phone", "in": "path", "required": True,
    "description": "Any format a person types; normalised to E.164", "schema": {"type": "string"},
    "examples": {"e164": {"value": "+13055550123"}, "typed": {"value": "(305) 555-0123"}},
}  # fmt: skip
_PRACTICE = {
    "name": "practice", "in": "query", "schema": {"type": "string"},
    "description": "The practice's slug; optional when the token reaches only one practice",
}  # fmt: skip
_PRACTICE_OR_BODY = {**_PRACTICE, "description": "Instead of the body's `practice`"}

_COUNT = {"type": "integer", "minimum": 0}
_ERASURE_COUNTS = (
    "suppressed_categories", "cancelled_reminders", "anonymised_messages",
    "deleted_inbound_messages", "kept_consent_events",
)  # fmt: skip
_ERASED = {
    "type": "object",
    "properties": {
        "erased": {
            "type": "object",
            "properties": dict.fromkeys(_ERASURE_COUNTS, _COUNT),
            "required": list(_ERASURE_COUNTS),
        }
    },
    "required": ["erased"],
}
_ARRAY_OF_OBJECTS = {"type": "array", "items": {"type": "object"}}
_EXPORT = {
    "type": "object",
    "properties": {
        "exported_at": _TIME,
        "practice": {"type": "string"},
        "phone": {"type": "string"},
        "contact": {"type": ["object", "null"]},
        "consent": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "status": _CONSENT_STATE["properties"]["status"],
                    "since": _TIME_OR_NULL,
                    "source": _CONSENT_STATE["properties"]["source"],
                },
                "required": ["status", "since", "source"],
            },
        },
        "consent_events": {"type": "array", "items": {"$ref": "#/components/schemas/ConsentEvent"}},
        "inbound_messages": _ARRAY_OF_OBJECTS,
        "outbound_messages": _ARRAY_OF_OBJECTS,
    },
}
_EXPORT["required"] = list(_EXPORT["properties"])
_MARKETING_REQUESTED = {
    "type": "object",
    "properties": {
        "consent": _CONSENT_STATE,
        "confirmation": {
            "oneOf": [{"$ref": "#/components/schemas/Reminder"}, {"type": "null"}],
            "description": "The queued text asking for YES (null: nothing sent)",
        },
    },
    "required": ["consent", "confirmation"],
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "SMS consent gateway API",
        "version": "1",
        "description": "For the scheduling system and staff tools. Every call needs "
        "`Authorization: Bearer <token>`. Where several practices are configured, a call names "
        "its practice (query parameter on GET/DELETE, body field on POST). A JSON body whose "
        "text holds a NUL character or an unpaired surrogate, or whose numbers are NaN or "
        "Infinity, is refused with 422 (a reason per field); one over 256 KiB with 413.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "ValidationErrors": _ERRORS,
            "ConsentEvent": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "category": _CATEGORY,
                    "action": {
                        "type": "string",
                        "enum": _values(Action),
                        "description": "`opt_in_requested`: a web form's consent awaiting YES",
                    },
                    "source": {"type": "string", "enum": _values(Source)},
                    "occurred_at": _TIME,
                    "recorded_at": _TIME,
                    "evidence": {"type": "object"},
                },
            },
            "ReminderRequest": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "to", "send_at", "template", "params"],
                "properties": {
                    "id": {
                        "type": "string",
                        "pattern": "^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$",
                        "description": "The caller's id; the idempotency key per practice",
                    },
                    "to": {"type": "string", "description": "Any format; normalised to E.164"},
                    "send_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "RFC 3339 with an offset",
                    },
                    "expires_at": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "Never sent after this (e.g. the appointment); "
                        "after send_at",
                    },
                    "template": {
                        "type": "string",
                        "enum": ["appointment_reminder", "practice_news"],
                        "description": "appointment_reminder (transactional) needs "
                        "`appointment_time` and may have `location`; practice_news (marketing) "
                        "needs `message`",
                    },
                    "params": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "appointment_time": {
                                "type": "string",
                                "format": "date-time",
                                "maxLength": MAX_PARAM_CHARS,
                            },
                            "location": _PARAM_VALUE,
                            "message": _PARAM_VALUE,
                        },
                    },
                    "practice": {"type": "string"},
                    "category": {
                        **_CATEGORY,
                        "default": "transactional",
                        "description": "The template's category",
                    },
                },
            },
            "Reminder": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "practice": {"type": "string"},
                    "to": {"type": "string"},
                    "category": _CATEGORY,
                    "template": {"type": "string"},
                    "params": {"type": "object"},
                    "send_at": _TIME,
                    "expires_at": _TIME_OR_NULL,
                    "status": {"type": "string", "enum": _values(OutboxStatus)},
                    "reason": {
                        "type": ["string", "null"],
                        "description": "Why it was skipped (opted_out, expired, "
                        "no_consent, not_mobile, invalid_number, no_sender), "
                        "is being retried, or failed",
                    },
                    "attempts": {"type": "integer"},
                    "next_attempt_at": _TIME_OR_NULL,
                    "sent_at": _TIME_OR_NULL,
                    "completed_at": _TIME_OR_NULL,
                    "provider_sid": _TEXT_OR_NULL,
                    "error_code": {"type": ["integer", "null"]},
                    "created_at": _TIME,
                    "response": {
                        "type": ["string", "null"],
                        "enum": ["confirmed", "reschedule_requested", None],
                        "description": "The patient's answer to an appointment reminder that "
                        "invited one (`confirmations = true`): C confirmed, R asked to "
                        "reschedule; null: no answer",
                    },
                    "responded_at": _TIME_OR_NULL,
                },
            },
            "Contact": {
                "type": "object",
                "properties": {
                    "phone": {"type": "string", "description": "E.164"},
                    "practice": {"type": "string"},
                    "known": {"type": "boolean", "description": "The practice has a record"},
                    "language": {"type": ["string", "null"], "enum": ["en", "es", None]},
                    "time_zone": _TEXT_OR_NULL,
                    "alternate_phone": _TEXT_OR_NULL,
                    "date_of_birth": {"type": ["string", "null"], "format": "date"},
                    "guardian_phone": _TEXT_OR_NULL,
                    "do_not_text": {"type": "boolean"},
                    "unreachable": {
                        "type": ["string", "null"],
                        "enum": [*_values(Unreachable), None],
                        "description": "Twilio said the number cannot receive SMS",
                    },
                    "consent": {
                        "type": "object",
                        "properties": {
                            "transactional": _CONSENT_STATE,
                            "marketing": _CONSENT_STATE,
                        },
                        "required": ["transactional", "marketing"],
                    },
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/contacts/{phone}": {
            "delete": {
                "summary": "Erasure: delete or anonymise the number's personal data in the "
                "practice; the consent proof and, for opted-out categories, a suppression "
                "entry are kept, and the erasure is recorded",
                "parameters": [_PHONE, _PRACTICE],
                "responses": {
                    "200": _json(_ERASED, "Erased: counts"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such practice"),
                    "422": _json(_ERRORS, "Unparsable number or practice missing"),
                },
            },
            "patch": {
                "summary": "Change the contact's settings: time zone, language, do-not-text "
                "(HIPAA confidential communications), alternate number, birth date, guardian",
                "parameters": [_PHONE, _PRACTICE_OR_BODY],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "practice": {"type": "string"},
                                    "time_zone": {
                                        "type": ["string", "null"],
                                        "description": "IANA, e.g. America/Chicago",
                                    },
                                    "language": {
                                        "type": ["string", "null"],
                                        "enum": ["en", "es", None],
                                    },
                                    "do_not_text": {"type": "boolean"},
                                    "alternate_phone": {"type": ["string", "null"]},
                                    "guardian_phone": {"type": ["string", "null"]},
                                    "date_of_birth": {"type": ["string", "null"], "format": "date"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Contact"}, "Updated"),
                    "400": _json(_ERROR, "Not a JSON object"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such practice"),
                    "422": _json(_ERRORS, "Invalid fields, with a reason for each"),
                    **_BODY_ERRORS,
                },
            },
            "get": {
                "summary": "A number's consent per category, with the event that set it",
                "parameters": [_PHONE, _PRACTICE],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Contact"}, "The consent"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such practice"),
                    "422": _json(_ERRORS, "Unparsable number or practice missing"),
                },
            },
        },
        "/api/v1/contacts/{phone}/export": {
            "get": {
                "summary": "Access and portability: everything held on the number in the "
                "practice (contact, consent events with evidence, inbound and outbound messages)",
                "parameters": [_PHONE, _PRACTICE],
                "responses": {
                    "200": _json(_EXPORT, "The export"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such practice"),
                    "422": _json(_ERRORS, "Unparsable number or practice missing"),
                },
            }
        },
        "/api/v1/contacts/{phone}/consent": {
            "post": {
                "summary": "Record an opt-in or opt-out taken outside SMS (a call, the front "
                "desk, an e-mail); effective for the next dispatch pass",
                "parameters": [_PHONE, _PRACTICE_OR_BODY],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["category", "action", "channel", "staff"],
                                "properties": {
                                    "practice": {"type": "string"},
                                    "category": {
                                        "type": "string",
                                        "enum": ["transactional", "marketing"],
                                    },
                                    "action": {
                                        "type": "string",
                                        "enum": ["opt_in", "opt_out"],
                                        "description": "A marketing opt_in needs the double opt-in",
                                    },
                                    "channel": {
                                        "type": "string",
                                        "enum": ["phone", "front_desk", "email", "mail", "other"],
                                    },
                                    "staff": {"type": "string", "minLength": 1, "maxLength": 128},
                                    "note": {"type": ["string", "null"], "maxLength": 1000},
                                    "occurred_at": {
                                        "type": ["string", "null"],
                                        "format": "date-time",
                                        "description": "Not in the future; default now",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/Contact"}, "Recorded"),
                    "400": _json(_ERROR, "Not a JSON object"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such practice"),
                    "422": _json(_ERRORS, "Invalid fields, with a reason for each"),
                    **_BODY_ERRORS,
                },
            }
        },
        "/api/v1/contacts/{phone}/marketing-consent": {
            "post": {
                "summary": "Record a web form's express written consent to marketing and text "
                "the patient for YES (double opt-in); marketing stays pending until then",
                "parameters": [_PHONE, _PRACTICE_OR_BODY],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["disclosure", "page_url", "ip"],
                                "properties": {
                                    "practice": {"type": "string"},
                                    "disclosure": {
                                        "type": "string",
                                        "maxLength": 4000,
                                        "description": "The consent text the patient saw",
                                    },
                                    "page_url": {
                                        "type": "string",
                                        "format": "uri",
                                        "pattern": "^https?://\\S+$",
                                    },
                                    "ip": {
                                        "type": "string",
                                        "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
                                    },
                                    "user_agent": {"type": ["string", "null"], "maxLength": 1000},
                                    "consented_at": {
                                        "type": ["string", "null"],
                                        "format": "date-time",
                                        "description": "Not in the future; default now",
                                    },
                                    "date_of_birth": {"type": ["string", "null"], "format": "date"},
                                    "adult_attested": {
                                        "type": "boolean",
                                        "description": "Required true without a birth date",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": _json(_MARKETING_REQUESTED, "Pending; the confirmation text is queued"),
                    "200": _json(_MARKETING_REQUESTED, "Already opted in or pending: nothing sent"),
                    "400": _json(_ERROR, "Not a JSON object"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such practice"),
                    "422": _json(_ERRORS, "Invalid fields, a minor, or no marketing sender"),
                    **_BODY_ERRORS,
                },
            }
        },
        "/api/v1/reminders": {
            "post": {
                "summary": "Enqueue one message",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ReminderRequest"}
                        }
                    },
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/Reminder"}, "Created"),
                    "200": _json({"$ref": "#/components/schemas/Reminder"}, "Identical replay"),
                    "400": _json(_ERROR, "Not JSON"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "409": _json(_ERROR, "The same id with a different body"),
                    "422": _json(
                        _ERRORS,
                        "Invalid fields, with a reason for each; also an unknown practice, and a "
                        "patient under the practice's minimum age",
                    ),
                    **_BODY_ERRORS,
                },
            }
        },
        "/api/v1/reminders/{id}": {
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The id the reminder was enqueued with",
                },
                _PRACTICE,
            ],
            "get": {
                "summary": "A reminder's state",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Reminder"}, "Its state"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such reminder or practice"),
                    "422": _json(_ERRORS, "Practice missing"),
                },
            },
            "delete": {
                "summary": "Cancel a reminder not yet sent (idempotent)",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Reminder"}, "Cancelled"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such reminder or practice"),
                    "409": _json(
                        {
                            **_ERROR,
                            "properties": {
                                **_ERROR["properties"],
                                "reminder": {"$ref": "#/components/schemas/Reminder"},
                            },
                            "required": ["error", "reminder"],
                        },
                        "Too late: already sent or finished",
                    ),
                    "422": _json(_ERRORS, "Practice missing"),
                },
            },
        },
        "/healthz": {
            "get": {
                "summary": "Liveness and database reachability",
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"type": "string", "enum": ["ok", "attention"]},
                                "database": {"type": "string", "enum": ["ok"]},
                                "review_queue": {
                                    "type": "object",
                                    "description": "Overdue possible opt-outs (status "
                                    "`attention`): a count; per practice only with an API "
                                    "bearer token (the token's practices)",
                                    "properties": {
                                        "overdue": {"type": "integer"},
                                        "practices": {
                                            "type": "object",
                                            "additionalProperties": {
                                                "type": "object",
                                                "properties": {
                                                    "overdue": {"type": "integer"},
                                                    "alert_hours": {"type": "number"},
                                                },
                                                "required": ["overdue", "alert_hours"],
                                            },
                                        },
                                    },
                                    "required": ["overdue"],
                                },
                            },
                            "required": ["status", "database"],
                        },
                        "Up",
                    ),
                    "503": _json(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"type": "string", "enum": ["unavailable"]},
                                "database": {"type": "string", "enum": ["unreachable", "error"]},
                            },
                            "required": ["status", "database"],
                        },
                        "Database unreachable",
                    ),
                },
            }
        },
    },
}


# every field of these responses is always present (null when it has no value)
for _name in ("ConsentEvent", "Reminder", "Contact"):
    _schema = DOCUMENT["components"]["schemas"][_name]
    _schema["required"] = list(_schema["properties"])


@bp.get("/api/v1/openapi.json")
def openapi() -> object:
    return jsonify(DOCUMENT)


DOCUMENT["paths"].update(review_api.OPENAPI_PATHS)
DOCUMENT["paths"].update(events_api.OPENAPI_PATHS)
