"""Sign-in, sign-out and the checks every console request goes through.

Before any console view: a POST must carry the session's CSRF token (400 otherwise: Flask-WTF's
``CSRFProtect``, set up in ``gateway.web.console``, checks it before the hook here); every page
but the sign-in page needs a live staff session (else a redirect to sign-in, which comes back to
the page afterwards). ``g.staff`` is then the signed-in ``Staff``, and ``practice_or_404`` lets
a view reach only that staff member's practices: another practice's pages answer 404, as if they
did not exist, like a scoped API token.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask import session as cookie

from gateway.config import Practice, current_settings
from gateway.store import accounts, audit, sessions
from gateway.store.accounts import Staff
from gateway.store.db import get_session
from gateway.store.models import utcnow
from gateway.store.throttle import FailedSignIns
from gateway.web import log_context
from gateway.web.console.blueprint import bp

log = logging.getLogger("gateway.console.auth")  # the name operators filter on

IDLE_TIMEOUT = timedelta(minutes=30)
SESSION_LIFETIME = timedelta(hours=8)
_PUBLIC = {"console.sign_in", "console.static"}
_SIGN_IN_FAILED = (
    "Sign-in failed: check the e-mail address and password. After several failed attempts, "
    "sign-in to an account pauses for a few minutes."
)


def limits() -> sessions.Limits:
    config = current_app.config
    return sessions.Limits(
        idle=config.get("CONSOLE_IDLE_TIMEOUT", IDLE_TIMEOUT),
        lifetime=config.get("CONSOLE_SESSION_LIFETIME", SESSION_LIFETIME),
    )


def throttle() -> FailedSignIns:
    return current_app.extensions["console.failed_sign_ins"]


@bp.before_request
def _check_request() -> Any:
    if request.endpoint in _PUBLIC:
        return None
    staff = _signed_in_staff()
    if staff is None:
        return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
    g.staff = staff
    return None


def _signed_in_staff() -> Staff | None:
    token = cookie.get("sid")
    if not isinstance(token, str):
        return None
    session = get_session()
    account_id = sessions.resume(session, token, utcnow(), limits())
    staff = None
    if account_id is not None:
        staff = accounts.load(session, account_id, tuple(current_settings().practices))
    if staff is None:
        cookie.pop("sid", None)
        flash("Your session has ended. Sign in again to continue.")
    return staff


def practice_or_404(slug: str) -> Practice:
    """The practice, if the signed-in staff member may see it; 404 otherwise."""
    practice = current_settings().practices.get(slug)
    if practice is None or slug not in g.staff.practices:
        abort(404, description="No such page.")
    log_context.set_practice(slug)
    return practice


def record_audit(action: str, practice: Practice, phone: str | None = None, **details: Any) -> None:
    """Who did this (the signed-in staff member), in the request's transaction."""
    audit.record(
        get_session(), hash_key=current_settings().hash_key, actor=g.staff.actor, action=action,
        practice=practice.slug, phone=phone, details=details,
    )  # fmt: skip


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    next_page = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("console/sign_in.html", next=next_page, email="")
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    if not email or not password:
        return _sign_in_form("Enter your e-mail address and password.", email, next_page, 422)
    now = utcnow()
    address = request.remote_addr or "-"
    session = get_session()
    if throttle().blocked(session, address, now):
        log.warning("console sign-in refused: too many failures from this address")
        return _sign_in_form("Too many failed sign-ins from this device. Wait a few minutes "
                             "and try again.", email, next_page, 429)  # fmt: skip
    try:
        staff = accounts.authenticate(session, email, password, now)
    except accounts.SignInRefused as exc:
        throttle().record(session, address, now)
        log.info("console sign-in refused (%s)", exc.reason)  # never the e-mail or password
        return _sign_in_form(_SIGN_IN_FAILED, email, next_page, 401)
    sessions.purge_expired(session, now, limits())
    token = sessions.open_session(session, staff.id, now)
    # nothing from before sign-in carries over (session fixation), the CSRF value included:
    # Flask-WTF makes a new one for this session's first form
    cookie.clear()
    cookie["sid"] = token
    g.staff = staff
    for slug in staff.practices:
        if slug in current_settings().practices:
            record_audit("sign_in", current_settings().practices[slug])
    session.commit()
    log.info("console sign-in: staff %s", staff.id)
    return redirect(next_page or url_for("console.home"), 303)


def _sign_in_form(error: str, email: str, next_page: str | None, status: int) -> Any:
    return render_template("console/sign_in.html", error=error, email=email,
                           next=next_page), status  # fmt: skip


@bp.post("/sign-out")
def sign_out() -> Any:
    token = cookie.get("sid")
    session = get_session()
    for slug in g.staff.practices:
        record_audit("sign_out", current_settings().practices[slug])
    session.commit()
    if isinstance(token, str):
        sessions.close(session, token)
    cookie.clear()  # the CSRF value too: the signed-out page's forms get a new one
    flash("You are signed out.")
    return redirect(url_for("console.sign_in"), 303)


def _safe_next(value: str | None) -> str | None:
    """A page of the console to come back to after sign-in; anything else (another site,
    ``//evil.example``, the sign-in page itself) is dropped."""
    if not value or not value.startswith("/console/") or "\\" in value or not value.isprintable():
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith("/console/sign-"):
        return None
    return value
