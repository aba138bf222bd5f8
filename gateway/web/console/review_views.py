"""The review queue: possible opt-outs ("I'll stop by at 3", "wrong number") that changed no
consent until a staff member reads and resolves them through ``gateway.services.review``."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for

from gateway.config import current_settings
from gateway.core.errors import ValidationFailed
from gateway.services import consent, review
from gateway.store.db import get_session
from gateway.store.models import InboundMessage, utcnow
from gateway.web.console import forms, queries
from gateway.web.console.auth import practice_or_404, record_audit
from gateway.web.console.blueprint import bp

PAGE = 50
MAX_ID = 2**31 - 1  # inbound_messages.id: a 32-bit integer on PostgreSQL


@bp.get("/<practice>/reviews")
def reviews(practice: str) -> Any:
    chosen = practice_or_404(practice)
    before = _item_id(request.args.get("before"))
    session = get_session()
    try:
        items = review.open_items(session, chosen.slug, limit=PAGE, before_id=before)
    except review.ReviewNotFound:
        abort(404, description="No such review item.")
    more = len(items) == PAGE and review.open_items(
        session, chosen.slug, limit=1, before_id=items[-1].id
    )
    record_audit("list_reviews", chosen)
    session.commit()
    return render_template("console/reviews.html", practice=chosen, items=items,
                           next_before=items[-1].id if more else None)  # fmt: skip


def _item_id(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 10) or not (
        1 <= int(value) <= MAX_ID
    ):
        abort(404, description="No such review item.")
    return int(value)


@bp.route("/<practice>/reviews/<int:item_id>", methods=["GET", "POST"])
def review_item(practice: str, item_id: int) -> Any:
    chosen = practice_or_404(practice)
    session = get_session()
    item = queries.review_item(session, chosen.slug, item_id) if item_id <= MAX_ID else None
    if item is None:
        abort(404, description="No such review item.")
    if request.method == "GET":
        record_audit("read_review", chosen, item.phone, inbound_id=item.id)
        session.commit()
        return _page(chosen, item, {}, {})
    try:
        resolution, note = forms.review_resolution(request.form)
    except ValidationFailed as exc:
        return _page(chosen, item, exc.errors, request.form, 422)
    record_audit("resolve_review", chosen, item.phone, inbound_id=item.id, resolution=resolution)
    try:
        review.resolve(
            session, current_settings(), practice=chosen.slug, inbound_id=item.id,
            resolution=resolution, staff=g.staff.email, note=note, now=utcnow(),
        )  # fmt: skip
    except review.AlreadyResolved:
        session.expire_all()
        item = queries.review_item(session, chosen.slug, item_id)
        assert item is not None
        error = {"resolution": "Someone else resolved this text first; nothing was changed."}
        return _page(chosen, item, error, {}, 409)
    except review.ReviewNotFound:  # erased in the meantime
        abort(404, description="No such review item.")
    flash("Resolved: the text was an opt-out, recorded as of when it arrived."
          if resolution == "opt_out" else "Dismissed: the text was not an opt-out.")  # fmt: skip
    return redirect(url_for("console.reviews", practice=practice), 303)


def _page(
    practice: Any, item: InboundMessage, errors: dict[str, str], values: Any, status: int = 200
) -> Any:
    states = consent.current(get_session(), practice, item.phone)
    return render_template("console/review_item.html", practice=practice, item=item,
                           states=states, errors=errors, values=values), status  # fmt: skip
