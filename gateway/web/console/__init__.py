"""The staff console: server-rendered pages under ``/console`` for the front desk and the
practice manager (sign-in, patient lookup and consent changes, the review queue, the dashboard,
the audit log). It calls the same domain functions as the JSON API, never the API itself.

Modules: ``auth`` (sign-in, sessions, the checks before every view), ``csrf``, ``forms`` (form
checking), ``queries`` and ``stats`` (what the pages read), ``chart`` (the dashboard's SVG),
``formatting`` (Jinja filters), and the views: ``patient_views``, ``review_views``,
``dashboard_views``. The tables behind sign-in are ``gateway.store.accounts``, ``sessions`` and
``throttle``; ``flask staff`` is ``gateway.cli.console``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from gateway.web.console import (  # imported for their routes and checks on bp
    auth,
    dashboard_views,
    patient_views,
    review_views,
)
from gateway.web.console.blueprint import bp

__all__ = ["bp", "init_app"]
del dashboard_views, patient_views, review_views


def init_app(app: Flask) -> None:
    """Set the app up for the console: cookie settings, Jinja filters, the root URL's redirect.

    The app registers ``bp`` itself (every page's route is on it once this package is imported);
    ``flask staff`` is registered by ``gateway.cli``."""
    from gateway.store.throttle import FailedSignIns
    from gateway.web.console import csrf, formatting

    settings = app.extensions["gateway.settings"]
    app.secret_key = settings.secret_key
    app.config.update(
        SESSION_COOKIE_NAME="gateway_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.environment == "production",
    )
    app.config.setdefault("CONSOLE_IDLE_TIMEOUT", auth.IDLE_TIMEOUT)
    app.config.setdefault("CONSOLE_SESSION_LIFETIME", auth.SESSION_LIFETIME)
    app.extensions["console.failed_sign_ins"] = FailedSignIns(settings.hash_key)
    app.jinja_env.filters.update(formatting.FILTERS)
    app.jinja_env.globals.update(labels=formatting.LABELS, csrf_token=csrf.token)
    app.add_url_rule("/", "root", lambda: redirect(url_for("console.home")))


@bp.context_processor
def _template_context() -> dict[str, Any]:
    return {"staff": g.get("staff")}


@bp.errorhandler(HTTPException)
def _error_page(exc: HTTPException) -> Any:
    return render_template("console/error.html", code=exc.code, title=exc.name,
                           message=exc.description), exc.code  # fmt: skip


@bp.after_request
def _headers(response: Any) -> Any:
    headers = response.headers
    if request.endpoint != "console.static":
        headers["Cache-Control"] = "no-store"  # pages carry patients' texts
    headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"  # URLs carry phone numbers
    return response
