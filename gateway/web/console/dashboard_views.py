"""The dashboard (sends, deliveries, failures and opt-outs per day; the outbox now) and the
audit log of a practice."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request

from gateway.store import event_outbox
from gateway.store.db import get_session
from gateway.store.models import utcnow
from gateway.web.console import chart, queries, stats
from gateway.web.console.auth import practice_or_404
from gateway.web.console.blueprint import bp


@bp.get("/<practice>/dashboard")
def dashboard(practice: str) -> Any:
    chosen = practice_or_404(practice)
    session = get_session()
    now = utcnow()
    daily = stats.daily_counts(session, chosen, now)
    return render_template(
        "console/dashboard.html", practice=chosen, daily=daily, now=now,
        chart=chart.line_chart(daily.days, daily.series),
        outbox=stats.outbox_counts(session, chosen, now),
        events_failing=event_outbox.failing(session, chosen.slug),
    )  # fmt: skip


@bp.get("/<practice>/audit")
def audit_log(practice: str) -> Any:
    chosen = practice_or_404(practice)
    raw = request.args.get("before", "")
    if raw and not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        abort(404, description="No such page of the audit log.")
    rows, next_before = queries.audit_page(get_session(), chosen.slug,
                                           before_id=int(raw) if raw else None)  # fmt: skip
    return render_template("console/audit.html", practice=chosen, rows=rows,
                           next_before=next_before)  # fmt: skip
