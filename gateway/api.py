"""The JSON API for the scheduling system and staff tools: ``/api/v1/...``, bearer tokens."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, abort, jsonify, request

from gateway import consent, contacts, current_settings, phone
from gateway.config import Practice
from gateway.consent import ConsentState
from gateway.db import get_session
from gateway.models import ConsentEvent

bp = Blueprint("api", __name__, url_prefix="/api/v1")


class Unprocessable(Exception):
    """422: the request is well-formed but its values are wrong; ``errors`` maps field -> reason."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


@bp.errorhandler(Unprocessable)
def _unprocessable(exc: Unprocessable) -> Any:
    return jsonify(errors=exc.errors), 422


@bp.before_request
def _require_bearer_token() -> Any:
    if request.endpoint == "openapi.openapi":
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    supplied = token.strip().encode()
    valid = scheme.lower() == "bearer" and supplied and any(
        hmac.compare_digest(supplied, known.encode()) for known in current_settings().api_tokens
    )  # fmt: skip
    if not valid:
        response = jsonify(error="missing or invalid bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
        return response, 401
    return None


def practice_from(value: str | None, *, field: str = "practice") -> Practice:
    """The practice a call names; optional when only one practice is configured."""
    practices = current_settings().practices
    if not value:
        if len(practices) == 1:
            return next(iter(practices.values()))
        raise Unprocessable({field: "required: more than one practice is configured"})
    if value not in practices:
        abort(404, description=f"no practice {value!r}")
    return practices[value]


def normalized_phone(value: str, field: str = "phone") -> str:
    try:
        return phone.normalize(value)
    except phone.InvalidPhoneNumber as exc:
        raise Unprocessable({field: str(exc)}) from None


@bp.get("/contacts/<phone_text>")
def get_contact(phone_text: str) -> Any:
    practice = practice_from(request.args.get("practice"))
    number = normalized_phone(phone_text)
    session = get_session()
    contact = contacts.get(session, practice.slug, number)
    states = consent.current(session, practice.slug, number)
    return jsonify(
        phone=number,
        practice=practice.slug,
        known=contact is not None,
        language=contact.language if contact else None,
        consent={category.value: state_json(state) for category, state in states.items()},
    )


def state_json(state: ConsentState) -> dict[str, Any]:
    return {
        "status": state.status.value,
        "since": _iso(state.since),
        "source": state.source,
        "event": event_json(state.event) if state.event else None,
    }


def event_json(event: ConsentEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "category": event.category,
        "action": event.action,
        "source": event.source,
        "occurred_at": _iso(event.occurred_at),
        "recorded_at": _iso(event.recorded_at),
        "evidence": event.evidence,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
