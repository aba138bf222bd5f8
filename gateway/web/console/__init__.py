"""The staff console: server-rendered pages under ``/console`` for the front desk and the
practice manager (sign-in, patient lookup and consent changes, the review queue, the dashboard,
the audit log). It calls the same domain functions as the JSON API, never the API itself.

Modules: ``auth`` (sign-in, sessions, the checks before every view), ``forms`` (form checking),
``queries`` and ``stats`` (what the pages read), ``chart`` (the dashboard's SVG), ``formatting``
(Jinja filters), and the views: ``patient_views``, ``review_views``, ``dashboard_views``. The
tables behind sign-in are ``gateway.store.accounts``, ``sessions`` and ``throttle``; ``flask
staff`` is ``gateway.cli.console``. Forms are protected against cross-site request forgery by
Flask-WTF's ``CSRFProtect`` (``_protect_forms`` says how).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, g, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from itsdangerous import URLSafeTimedSerializer
from werkzeug.exceptions import HTTPException

from gateway.web.console import (  # imported for their routes and checks on bp
    auth,
    dashboard_views,
    patient_views,
    review_views,
)
from gateway.web.console.blueprint import bp

__all__ = ["CSRF_REFUSED", "bp", "init_app"]
del dashboard_views, patient_views, review_views

#: what a form without this session's CSRF token is told (status 400)
CSRF_REFUSED = ("The form has expired or did not come from this site. "
                "Go back, reload the page and try again.")  # fmt: skip
_CSRF_KEY_PURPOSE = b"gateway.web.console: CSRF tokens"


def init_app(app: Flask, *, csrf_exempt: Iterable[Blueprint]) -> None:
    """Set the app up for the console: cookie settings, CSRF protection, Jinja filters, the root
    URL's redirect.

    The app registers ``bp`` itself (every page's route is on it once this package is imported);
    ``flask staff`` is registered by ``gateway.cli``. ``csrf_exempt``: the blueprints whose
    requests authenticate themselves (the JSON API's bearer token, Twilio's signature) and carry
    no console cookie; every other POST, PUT, PATCH or DELETE of the app needs the token (see
    ``_protect_forms``). Call it after the request-id hook (``log_context.init_app``), so that a
    refused form's answer carries its request id like any other.
    """
    from gateway.store.throttle import FailedSignIns
    from gateway.web.console import formatting

    settings = app.extensions["gateway.settings"]
    app.secret_key = settings.secret_key
    app.session_interface = _CookieSessions()
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
    app.jinja_env.globals.update(labels=formatting.LABELS)
    _protect_forms(app, settings.secret_key, csrf_exempt)
    app.add_url_rule("/", "root", lambda: redirect(url_for("console.home")))


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened on every request, without the work a request
    with no cookie at all (Twilio's webhooks, the API) does not need: Flask builds the cookie's
    signer anew for each request and parses the Cookie header to find no session. Here the
    signer is built once per set of keys, and a request without a Cookie header gets the empty
    session Flask would have given it."""

    def __init__(self) -> None:
        self._signers: dict[tuple[Any, ...], URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        try:
            return self._signers[keys]
        except KeyError:
            signer = super().get_signing_serializer(app)
            self._signers = {keys: signer}  # the keys of now only
            return signer

    def open_session(self, app: Flask, request: Any) -> SecureCookieSession | None:
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)


def _protect_forms(app: Flask, secret_key: str, exempt: Iterable[Blueprint]) -> None:
    """Flask-WTF's ``CSRFProtect`` (synchronizer token pattern) over the console's sessions.

    Where the secret lives: Flask-WTF keeps a random value (``csrf_token``) in Flask's session.
    Here that session is the console's own cookie (``gateway_console``, path ``/console``,
    ``HttpOnly``, ``SameSite=Lax``, ``Secure`` in production, signed with
    ``GATEWAY_SECRET_KEY``), the same cookie that holds the token of the staff session kept in
    the database (``gateway.store.sessions``), so no other storage is needed. Every form carries
    the value signed (the ``csrf_token()`` of the templates, hidden field ``csrf_token``); a POST
    passes only if the signature holds and the value is the one in the cookie (compared in
    constant time), before any view reads or writes anything. Otherwise: 400 and the console's
    error page (``CSRF_REFUSED``).

    Tied to the signed-in session: sign-in and sign-out clear the cookie (``auth``), so each
    staff session gets a fresh value. A token from before sign-in, from after sign-out, from
    another browser or from another staff session of the same account is refused.

    Settings, and why:

    - ``WTF_CSRF_SECRET_KEY``: derived from ``GATEWAY_SECRET_KEY`` (HMAC-SHA256 with a label),
      so the configured secret signs cookies and tokens with separate keys; derived, not random,
      so every web worker accepts the others' forms.
    - ``WTF_CSRF_TIME_LIMIT = None``: no expiry of Flask-WTF's own (its default of an hour
      would refuse a form left open over lunch). A token lives as long as its session, which
      the database ends after ``CONSOLE_IDLE_TIMEOUT`` idle or ``CONSOLE_SESSION_LIFETIME``.
    - ``WTF_CSRF_SSL_STRICT = False``: no ``Referer`` check over HTTPS. The console sends
      ``Referrer-Policy: no-referrer``, so browsers send none and every form would be refused.
    - ``WTF_CSRF_HEADERS = []``: only the form field counts, not an ``X-CSRFToken`` header;
      the console runs no script.
    """
    key = hmac.new(secret_key.encode(), _CSRF_KEY_PURPOSE, hashlib.sha256).digest()
    app.config.update(
        WTF_CSRF_SECRET_KEY=key,
        WTF_CSRF_FIELD_NAME="csrf_token",
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=False,
        WTF_CSRF_HEADERS=[],
    )
    csrf = CSRFProtect(app)
    for blueprint in exempt:
        csrf.exempt(blueprint)


@bp.context_processor
def _template_context() -> dict[str, Any]:
    return {"staff": g.get("staff")}


@bp.errorhandler(CSRFError)
def _csrf_refused(exc: CSRFError) -> Any:
    # Flask-WTF's reason (missing, invalid, another session's) is logged by flask_wtf.csrf
    return render_template("console/error.html", code=400, title=exc.name,
                           message=CSRF_REFUSED), 400  # fmt: skip


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
