"""``GET /healthz``: liveness, database reachability and the staff review queue, for load
balancers and monitors.

``200 {"status": "ok", "database": "ok"}`` when all is well. When possible opt-outs have waited
for staff review longer than a practice's ``review_alert_hours``, the answer is still ``200`` (the
service is up) with ``"status": "attention"`` and ``"review_queue": {"overdue": n}``: monitors
alert on the field, since the FCC wants revocations honoured promptly. The endpoint needs no
credentials, so it names no practice; with an API bearer token, ``review_queue`` also has
``"practices": {slug: {"overdue": n, "alert_hours": h}}`` for the practices the token may see.
``503`` when the database cannot be reached (or queried).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from spectree import Response

from gateway.config import current_settings
from gateway.services import review
from gateway.store.db import DatabaseFailure, get_database, ping
from gateway.store.models import utcnow
from gateway.web.api.common import bearer_token
from gateway.web.api.schemas import Health, Unavailable
from gateway.web.openapi import spec

log = logging.getLogger("gateway.health")  # the name operators filter on

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@spec.validate(
    resp=Response(HTTP_200=(Health, "Up"), HTTP_503=(Unavailable, "Database unreachable")),
    security={},
)
def healthz() -> Any:
    """Liveness and database reachability"""
    practices = current_settings().practices
    reached = False
    try:
        with get_database().sessions() as session:
            ping(session)
            reached = True
            # one grouped query over the (practice, review_status, received_at) index
            overdue = review.overdue_counts(session, practices.values(), utcnow())
    except DatabaseFailure as exc:
        if not reached:
            log.error("healthz: database unreachable: %s", type(exc).__name__)
            return jsonify(status="unavailable", database="unreachable"), 503
        log.error("healthz: review queue query failed: %s", type(exc).__name__)
        return jsonify(status="unavailable", database="error"), 503
    if not overdue:
        return jsonify(status="ok", database="ok")
    queue: dict[str, Any] = {"overdue": sum(overdue.values())}
    scope = _token_scope()
    if scope is not False:  # a valid API token: the detail, within its scope
        queue["practices"] = {
            slug: {"overdue": count, "alert_hours": practices[slug].review_alert_hours}
            for slug, count in sorted(overdue.items())
            if scope is None or slug in scope
        }
    return jsonify(status="attention", database="ok", review_queue=queue)


def _token_scope() -> frozenset[str] | None | bool:
    """The practices the request's bearer token may see (None: all), or False without a valid
    token (compared in constant time with every token, as the API does)."""
    matched = bearer_token()
    if matched is None:
        return False
    settings = current_settings()
    scope = settings.token_scopes.get(matched)
    return None if scope is None else frozenset(scope)
