"""The event deliveries to a practice's scheduling system: ``/api/v1/events``."""

from __future__ import annotations

import re
from typing import Any

from flask import abort, jsonify

from gateway.store import event_outbox
from gateway.store.db import get_session
from gateway.store.models import EventDelivery, utcnow
from gateway.web.api.common import api_blueprint, audit_event, iso, practice_from
from gateway.web.api.schemas import (
    Error,
    Event,
    EventConflict,
    EventPage,
    EventQuery,
    PracticeQuery,
    ValidationErrors,
)
from gateway.web.openapi import answers, spec

bp = api_blueprint("events", __name__)

_WEBHOOK_ID = re.compile(r"^msg_[0-9a-f]{32}$")


@bp.get("/events")
@spec.validate(
    resp=answers(
        HTTP_200=(EventPage, "A page of events"),
        HTTP_404=(Error, "No such practice"),
        HTTP_422=(ValidationErrors, "Bad status, limit or before; practice missing"),
    )
)
def list_events(query: EventQuery) -> Any:
    """The events sent (or being sent) to the practice's scheduling system, newest first"""
    practice = practice_from(query.practice)
    limit = query.limit
    session = get_session()
    audit_event(session, "list_events", practice, status=query.status)
    session.commit()
    rows = event_outbox.page(session, practice.slug, status=query.status, limit=limit + 1,
                             before=query.before)  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(items=[event_json(row) for row in rows],
                   next_before=rows[-1].id if more else None)  # fmt: skip


@bp.post("/events/<webhook_id>/retry")
@spec.validate(
    resp=answers(
        HTTP_200=(Event, "Pending: the scheduler attempts it within seconds"),
        HTTP_404=(Error, "No such event or practice"),
        HTTP_409=(EventConflict, "Already delivered"),
        HTTP_422=(ValidationErrors, "Practice missing"),
    ),
    path_parameter_descriptions={
        "webhook_id": "The event's id (`msg_...`, its `webhook-id` header)"
    },
)
def retry_event(webhook_id: str, query: PracticeQuery) -> Any:
    """Attempt a failed (or waiting) event again now, with the same webhook-id"""
    practice = practice_from(query.practice)
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
    """The API's ``Event``."""
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
