"""Staff review of inbound messages that may be revocations: ``/api/v1/reviews``."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify

from gateway.config import current_settings
from gateway.core.errors import ValidationFailed
from gateway.services import review
from gateway.store.db import get_session
from gateway.store.models import InboundMessage, utcnow
from gateway.web.api.common import api_blueprint, audit_event, iso, json_body, practice_from
from gateway.web.api.schemas import (
    MAX_ID,
    Error,
    PracticeQuery,
    ResolvedReview,
    ReviewPage,
    ReviewQuery,
    ReviewResolution,
    ValidationErrors,
)
from gateway.web.openapi import answers, spec

bp = api_blueprint("reviews", __name__)


@bp.get("/reviews")
@spec.validate(
    resp=answers(
        HTTP_200=(ReviewPage, "One page of open items"),
        HTTP_404=(Error, "No such practice"),
        HTTP_422=(ValidationErrors, "Bad limit or cursor, or practice missing"),
    )
)
def list_reviews(query: ReviewQuery) -> Any:
    """Open possible opt-outs awaiting staff review, oldest first

    Texts that mention stopping but are ambiguous ("I'll stop by at 3", "wrong number") changed
    no consent; staff read each and resolve it. Pages follow one another: pass `next_before` as
    `before` for the next page (`null`: the last page).
    """
    practice = practice_from(query.practice)
    limit = query.limit
    audit_event(get_session(), "list_reviews", practice)
    get_session().commit()
    try:
        page = review.open_items(get_session(), practice.slug, limit=limit,
                                 before_id=query.before)  # fmt: skip
    except review.ReviewNotFound:
        raise ValidationFailed({"before": "no review item with this id in the practice"}) from None
    # a full page: is there more? (asking for limit + 1 would exceed MAX_LIMIT at limit=500)
    more = len(page) == limit and review.open_items(
        get_session(), practice.slug, limit=1, before_id=page[-1].id
    )
    next_before = page[-1].id if more else None
    return jsonify(items=[item_json(item) for item in page], next_before=next_before)


@bp.post("/reviews/<int:inbound_id>")
@json_body()
@spec.validate(
    resp=answers(
        body=True,
        HTTP_200=(ResolvedReview, "Resolved"),
        HTTP_404=(Error, "No such review item in the practice, or no such practice"),
        HTTP_409=(Error, "Already resolved"),
    ),
    path_parameter_descriptions={"inbound_id": "The item's `id`"},
)
def resolve_review(inbound_id: int, json: ReviewResolution, query: PracticeQuery) -> Any:
    """Resolve an open item: a revocation (opt_out) or not (dismiss)

    `opt_out` revokes every category the texted number carries (as a STOP to it would), source
    `staff`, as of the time the patient texted. `dismiss` changes no consent. An item is
    resolved once.
    """
    errors: dict[str, str] = {}
    if json.practice is not None and query.practice and json.practice != query.practice:
        errors["practice"] = "the query and the body name different practices"
    try:
        practice = practice_from(query.practice or json.practice)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    if not 1 <= inbound_id <= MAX_ID:  # no such row; the database could not even compare it
        abort(404, description=f"no review item {inbound_id} in practice {practice.slug!r}")
    audit_event(get_session(), "resolve_review", practice, None, inbound_id=inbound_id,
                resolution=json.resolution, staff=json.staff)  # fmt: skip
    try:
        message = review.resolve(
            get_session(), current_settings(), practice=practice.slug, inbound_id=inbound_id,
            resolution=json.resolution, staff=json.staff, note=json.note, now=utcnow(),
        )  # fmt: skip
    except review.ReviewNotFound:
        abort(404, description=f"no review item {inbound_id} in practice {practice.slug!r}")
    return jsonify(resolved_json(message))


def item_json(message: InboundMessage) -> dict[str, Any]:
    """The API's ``ReviewItem``."""
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
    """The API's ``ResolvedReview``."""
    return {
        **item_json(message),
        "review_status": message.review_status,
        "reviewed_at": iso(message.reviewed_at),
        "reviewed_by": message.reviewed_by,
        "review_note": message.review_note,
    }
