"""``GET /healthz``: liveness, database reachability and the staff review queue, for load
balancers and monitors.

``200 {"status": "ok", "database": "ok"}`` when all is well. When possible opt-outs have waited
for staff review longer than a practice's ``review_alert_hours``, the answer is still ``200`` (the
service is up) with ``"status": "attention"`` and ``"review_queue": {slug: {"overdue": n,
"alert_hours": h}}``: monitors alert on the field, since the FCC wants revocations honoured
promptly. ``503`` when the database cannot be reached (or queried).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway import current_settings, review
from gateway.db import get_database
from gateway.models import utcnow

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    practices = current_settings().practices
    reached = False
    try:
        with get_database().sessions() as session:
            session.execute(text("SELECT 1"))
            reached = True
            # one grouped query over the (practice, review_status, received_at) index
            overdue = review.overdue_counts(session, practices.values(), utcnow())
    except SQLAlchemyError as exc:
        if not reached:
            log.error("healthz: database unreachable: %s", type(exc).__name__)
            return jsonify(status="unavailable", database="unreachable"), 503
        log.error("healthz: review queue query failed: %s", type(exc).__name__)
        return jsonify(status="unavailable", database="error"), 503
    if not overdue:
        return jsonify(status="ok", database="ok")
    queue = {
        slug: {"overdue": count, "alert_hours": practices[slug].review_alert_hours}
        for slug, count in sorted(overdue.items())
    }
    return jsonify(status="attention", database="ok", review_queue=queue)
