"""The OpenAPI 3.1 description of the JSON API, served at ``GET /api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

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
            }
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
