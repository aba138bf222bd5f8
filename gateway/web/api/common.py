"""What every JSON API call shares: the bearer token, the practice a call names, the audit trail,
the JSON body's outer checks, and the 422 answer of a request that fails its schema.

Each resource (reminders, contacts, reviews, events) has its own blueprint from
``api_blueprint``; the app factory registers each.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, abort, g, jsonify, request
from pydantic import ValidationError

from gateway.config import Practice, current_settings
from gateway.core import phone as phones
from gateway.core.errors import Conflict, ValidationFailed
from gateway.store import audit
from gateway.web import log_context
from gateway.web.api import schemas

PREFIX = "/api/v1"
View = TypeVar("View", bound=Callable[..., Any])


def api_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint under ``/api/v1`` whose calls need a bearer token (401 otherwise) and whose
    ValidationFailed is answered ``422 {"errors": {...}}`` and Conflict ``409 {"error": ...}``."""
    bp = Blueprint(name, import_name, url_prefix=PREFIX)
    bp.before_request(_require_bearer_token)
    bp.register_error_handler(ValidationFailed, _unprocessable)
    bp.register_error_handler(Conflict, _conflict)
    return bp


def _unprocessable(exc: ValidationFailed) -> Any:
    return jsonify(errors=exc.errors), 422


def _conflict(exc: Conflict) -> Any:
    return jsonify(error=str(exc)), 409


def bearer_token() -> str | None:
    """The configured API token the request's ``Authorization: Bearer`` header carries, or None.

    The header's token is compared with every configured token, in constant time."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    supplied = token.strip().encode()
    matched = None
    if scheme.lower() == "bearer" and supplied:
        for known in current_settings().api_tokens:
            if hmac.compare_digest(supplied, known.encode()):
                matched = known
    return matched


def _require_bearer_token() -> Any:
    matched = bearer_token()
    if matched is None:
        response = jsonify(error="missing or invalid bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
        return response, 401
    g.api_scope = current_settings().token_scopes.get(matched)
    g.actor = audit.token_fingerprint(matched)
    return None


def practice_from(value: str | None, *, field: str = "practice") -> Practice:
    """The practice a call names; optional when the token (or the gateway) has only one.

    Raises ValidationFailed (422) when none is named and several are reachable. A practice
    outside the token's scope is answered like one that does not exist (404), so a token cannot
    probe which practices, contacts or reminders exist elsewhere.
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


def named_practice() -> str | None:
    """The practice the request names: its JSON body's ``practice`` (text), else the query's."""
    body = request.get_json(silent=True) if request.is_json else None
    named = body.get("practice") if isinstance(body, dict) else None
    return (named if isinstance(named, str) else None) or request.args.get("practice")


def audit_event(
    session: Any, action: str, practice: Practice, phone: str | None = None, **details: Any
) -> None:
    """Record who did this (the calling token), in the caller's transaction."""
    audit.record(
        session, hash_key=current_settings().hash_key, actor=g.get("actor", "unknown"),
        action=action, practice=practice.slug, phone=phone, details=details,
    )  # fmt: skip


def normalized_phone(value: str, field: str = "phone") -> str:
    """``value`` (a number in a URL path) in E.164; raises ValidationFailed naming ``field``."""
    try:
        return phones.normalize(value)
    except phones.InvalidPhoneNumber as exc:
        raise ValidationFailed({field: str(exc)}) from None


def iso(value: datetime | None) -> str | None:
    """RFC 3339 text of an instant, UTC written ``Z``; None stays None."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def json_body(*, object_only: bool = False) -> Callable[[View], View]:
    """Put outside spectree's ``validate``: the request's body must be JSON (an object with
    ``object_only``), else 400 ``{"error": ...}``; JSON nested deeper than the parser goes is 400
    as well. What the JSON holds is the schema's to judge."""
    description = (
        "the body must be a JSON object (Content-Type: application/json)"
        if object_only
        else "the body must be JSON (Content-Type: application/json)"
    )

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                payload = request.get_json(silent=True)
            except RecursionError:  # arrays or objects nested deeper than the parser goes
                abort(400, description="the body is nested too deeply")
            if payload is None or (object_only and not isinstance(payload, dict)):
                return jsonify(error=description), 400
            return view(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def reject_invalid(
    practice: Callable[[], Any] | None = None,
) -> Callable[..., None]:
    """A spectree ``before`` hook: a request that failed its schema raises ValidationFailed with
    a reason per field (``schemas.reasons``), and with the practice's problem too when
    ``practice`` (called for it) raises one, so that every problem is reported at once."""

    def before(_request: Any, _response: Any, error: Exception | None, *_: Any) -> None:
        if error is None:
            return
        assert isinstance(error, ValidationError)
        errors = schemas.reasons(error)
        if practice is not None:
            try:
                practice()
            except ValidationFailed as exc:
                errors = {**exc.errors, **errors}
        raise ValidationFailed(errors)

    return before


def named_practice_exists() -> None:
    """The practice the request names (``named_practice``) is reachable; raises like
    ``practice_from``."""
    practice_from(named_practice())
