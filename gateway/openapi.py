"""The OpenAPI 3.1 description of the JSON API, served at ``GET /api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from gateway import review_api

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


_CONSENT_STATE = {
    "type": "object",
    "properties": {
        "status": {
            "type": "string",
            "enum": ["implied", "none", "pending", "opted_in", "opted_out"],
        },
        "since": {"type": ["string", "null"], "format": "date-time"},
        "source": {"type": ["string", "null"]},
        "event": {"oneOf": [{"$ref": "#/components/schemas/ConsentEvent"}, {"type": "null"}]},
    },
    "required": ["status", "since", "source", "event"],
}

_PHONE = {
    "name": "phone", "in": "path", "required": True,
    "description": "Any format a person types; normalised to E.164", "schema": {"type": "string"},
}  # fmt: skip

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "SMS consent gateway API",
        "version": "1",
        "description": "For the scheduling system and staff tools. Every call needs "
        "`Authorization: Bearer <token>`. Where several practices are configured, a call names "
        "its practice (query parameter on GET/DELETE, body field on POST).",
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
                    "category": {"type": "string", "enum": ["transactional", "marketing"]},
                    "action": {"type": "string", "enum": ["opt_in", "opt_out"]},
                    "source": {"type": "string"},
                    "occurred_at": {"type": "string", "format": "date-time"},
                    "recorded_at": {"type": "string", "format": "date-time"},
                    "evidence": {"type": "object"},
                },
                "required": ["id", "category", "action", "source", "occurred_at", "evidence"],
            },
            "ReminderRequest": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "to", "send_at", "template", "params"],
                "properties": {
                    "id": {
                        "type": "string",
                        "maxLength": 128,
                        "description": "The caller's id; the idempotency key per practice",
                    },
                    "to": {"type": "string", "description": "Any format; normalised to E.164"},
                    "send_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "RFC 3339 with an offset",
                    },
                    "expires_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "Never sent after this (e.g. the appointment)",
                    },
                    "template": {"type": "string", "enum": ["appointment_reminder"]},
                    "params": {
                        "type": "object",
                        "additionalProperties": {
                            "oneOf": [{"type": "string", "maxLength": 200}, {"type": "number"}]
                        },
                    },
                    "practice": {"type": "string"},
                    "category": {
                        "type": "string",
                        "enum": ["transactional", "marketing"],
                        "default": "transactional",
                    },
                },
            },
            "Reminder": {
                "type": "object",
                "required": ["id", "practice", "to", "status"],
                "properties": {
                    "id": {"type": "string"},
                    "practice": {"type": "string"},
                    "to": {"type": "string"},
                    "category": {"type": "string"},
                    "template": {"type": "string"},
                    "params": {"type": "object"},
                    "send_at": {"type": "string", "format": "date-time"},
                    "expires_at": {"type": ["string", "null"], "format": "date-time"},
                    "status": {
                        "type": "string",
                        "enum": [
                            "scheduled",
                            "sending",
                            "sent",
                            "delivered",
                            "undelivered",
                            "failed",
                            "skipped",
                            "cancelled",
                            "uncertain",
                        ],
                    },
                    "reason": {
                        "type": ["string", "null"],
                        "description": "Why it was skipped (opted_out, expired, "
                        "no_consent, not_mobile, invalid_number, no_sender), "
                        "is being retried, or failed",
                    },
                    "attempts": {"type": "integer"},
                    "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
                    "sent_at": {"type": ["string", "null"], "format": "date-time"},
                    "completed_at": {"type": ["string", "null"], "format": "date-time"},
                    "provider_sid": {"type": ["string", "null"]},
                    "error_code": {"type": ["integer", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "Contact": {
                "type": "object",
                "properties": {
                    "phone": {"type": "string", "description": "E.164"},
                    "practice": {"type": "string"},
                    "known": {"type": "boolean"},
                    "language": {"type": ["string", "null"]},
                    "consent": {
                        "type": "object",
                        "properties": {
                            "transactional": _CONSENT_STATE,
                            "marketing": _CONSENT_STATE,
                        },
                        "required": ["transactional", "marketing"],
                    },
                },
                "required": ["phone", "practice", "consent"],
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
                "parameters": [
                    _PHONE,
                    {"name": "practice", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json({"type": "object", "required": ["erased"]}, "Erased: counts"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such practice"),
                    "422": _json(_ERRORS, "Unparsable number or practice missing"),
                },
            },
            "patch": {
                "summary": "Change the contact's settings: time zone, language, do-not-text "
                "(HIPAA confidential communications), alternate number, birth date, guardian",
                "parameters": [_PHONE],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "practice": {"type": "string"},
                                    "time_zone": {"type": ["string", "null"]},
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
                },
            },
            "get": {
                "summary": "A number's consent per category, with the event that set it",
                "parameters": [
                    {
                        "name": "phone",
                        "in": "path",
                        "required": True,
                        "description": "Any format a person types; normalised to E.164",
                        "schema": {"type": "string"},
                    },
                    {"name": "practice", "in": "query", "schema": {"type": "string"}},
                ],
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
                "parameters": [
                    _PHONE,
                    {"name": "practice", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": [
                                "practice",
                                "phone",
                                "contact",
                                "consent",
                                "consent_events",
                                "inbound_messages",
                                "outbound_messages",
                            ],
                        },
                        "The export",
                    ),
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
                "parameters": [_PHONE],
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
                                    "staff": {"type": "string", "maxLength": 128},
                                    "note": {"type": "string", "maxLength": 1000},
                                    "occurred_at": {"type": "string", "format": "date-time"},
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
                },
            }
        },
        "/api/v1/contacts/{phone}/marketing-consent": {
            "post": {
                "summary": "Record a web form's express written consent to marketing and text "
                "the patient for YES (double opt-in); marketing stays pending until then",
                "parameters": [_PHONE],
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
                                    "page_url": {"type": "string", "format": "uri"},
                                    "ip": {"type": "string"},
                                    "user_agent": {"type": "string", "maxLength": 1000},
                                    "consented_at": {"type": "string", "format": "date-time"},
                                    "date_of_birth": {"type": "string", "format": "date"},
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
                    "202": _json({"type": "object"}, "Pending; the confirmation text is queued"),
                    "200": _json({"type": "object"}, "Already opted in or pending: nothing sent"),
                    "400": _json(_ERROR, "Not a JSON object"),
                    "401": _json(_ERROR, "Missing or invalid token"),
                    "404": _json(_ERROR, "No such practice"),
                    "422": _json(_ERRORS, "Invalid fields, a minor, or no marketing sender"),
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
                    "422": _json(_ERRORS, "Invalid fields, with a reason for each"),
                },
            }
        },
        "/api/v1/reminders/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "practice", "in": "query", "schema": {"type": "string"}},
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
                    "409": _json(_ERROR, "Too late: already sent or finished"),
                },
            },
        },
        "/healthz": {
            "get": {
                "summary": "Liveness and database reachability",
                "security": [],
                "responses": {
                    "200": _json({"type": "object"}, "Up"),
                    "503": _json({"type": "object"}, "Database unreachable"),
                },
            }
        },
    },
}


@bp.get("/api/v1/openapi.json")
def openapi() -> object:
    return jsonify(DOCUMENT)


DOCUMENT["paths"].update(review_api.OPENAPI_PATHS)
