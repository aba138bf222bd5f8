"""The console's home page (find a patient), the patient page, and the form that records a consent
change taken outside SMS (a phone call, the front desk, an e-mail, a letter).

A consent change is an ordinary consent event (``gateway.services.consent.record``, source
``staff``), so the very next dispatch pass honours it. The staff member's identity goes into its
evidence and into the audit log.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for

from gateway.config import Practice, current_settings
from gateway.core.domain import Source
from gateway.core.errors import ValidationFailed
from gateway.services import consent
from gateway.store import contacts
from gateway.store.db import get_session
from gateway.store.models import utcnow
from gateway.web.console import forms, queries
from gateway.web.console.auth import practice_or_404, record_audit
from gateway.web.console.blueprint import bp
from gateway.web.console.formatting import ACTION, CATEGORY, CHANNEL


@bp.get("/")
def home() -> Any:
    return _home()


def _home(errors: dict[str, str] | None = None, status: int = 200) -> Any:
    practices = [current_settings().practices[slug] for slug in g.staff.practices]
    return render_template(
        "console/home.html", practices=practices, errors=errors or {},
        phone=request.form.get("phone", ""), chosen=request.form.get("practice"),
    ), status  # fmt: skip


@bp.post("/find")
def find() -> Any:
    """The lookup form: a number in any format -> the patient page.

    A POST, so that the number as typed stays out of URLs and access logs (the patient page's
    URL carries it in E.164, which the logs mask).
    """
    slug = request.form.get("practice") or (
        g.staff.practices[0] if len(g.staff.practices) == 1 else ""
    )
    errors = {}
    if not slug:
        errors["practice"] = "Choose a practice."
    else:
        practice_or_404(slug)
    try:
        number = forms.phone_number(request.form.get("phone"))
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        return _home(errors, 422)
    return redirect(url_for("console.patient", practice=slug, phone=number), 303)


def _number(phone: str) -> str:
    """The E.164 form of a number in a URL; 422 when it is none."""
    try:
        return forms.phone_number(phone)
    except ValidationFailed as exc:
        abort(422, description=exc.errors["phone"])


@bp.get("/<practice>/patients/<phone>")
def patient(practice: str, phone: str) -> Any:
    chosen = practice_or_404(practice)
    number = _number(phone)
    if number != phone:
        return redirect(url_for("console.patient", practice=practice, phone=number), 301)
    session = get_session()
    page = queries.patient_page(session, chosen, number, utcnow())
    record_audit("read_contact", chosen, number)
    session.commit()
    return render_template("console/patient.html", practice=chosen, page=page)


@bp.route("/<practice>/patients/<phone>/consent", methods=["GET", "POST"])
def consent_form(practice: str, phone: str) -> Any:
    chosen = practice_or_404(practice)
    number = _number(phone)
    session = get_session()
    if request.method == "GET":
        return _consent_page(chosen, number, {}, {})
    now = utcnow()
    try:
        change = forms.consent_change(request.form, chosen, now)
    except ValidationFailed as exc:
        return _consent_page(chosen, number, exc.errors, request.form, 422)
    consent.record(
        session, practice=chosen.slug, phone=number, category=change.category,
        action=change.action, source=Source.STAFF, occurred_at=change.occurred_at,
        evidence={"channel": change.channel, "staff": g.staff.email,
                  "staff_account": g.staff.id, "note": change.note},
    )  # fmt: skip
    contacts.upsert(session, chosen.slug, number)
    record_audit("record_consent", chosen, number, category=change.category.value,
                 consent_action=change.action.value, channel=change.channel)  # fmt: skip
    session.commit()
    what = f"{ACTION[change.action.value]} for {CATEGORY[change.category.value].lower()}"
    flash(f"Recorded: {what} ({CHANNEL[change.channel].lower()}).")
    return redirect(url_for("console.patient", practice=practice, phone=number), 303)


def _consent_page(
    practice: Practice, number: str, errors: dict[str, str], values: Any, status: int = 200
) -> Any:
    states = consent.current(get_session(), practice, number)
    return render_template(
        "console/consent_form.html", practice=practice, phone=number, states=states,
        errors=errors, values=values, channels=CHANNEL,
    ), status  # fmt: skip
