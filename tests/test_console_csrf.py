"""CSRF protection (Flask-WTF's CSRFProtect): every console form needs the token of its own staff
session, and nothing else of the app does: the JSON API and Twilio's webhooks authenticate each
request themselves. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from console_support import EMAIL, PASSWORD, create_staff, csrf_of, post_form, sign_in, text_of
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from conftest import PATIENT, get_database_of
from gateway.store.models import AuditEvent, ConsentEvent, StaffSession
from gateway.web.console import CSRF_REFUSED

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
COOKIE = "gateway_console"
CONSENT_PAGE = f"/console/shared/patients/{PATIENT}/consent"
CONSENT_FORM = {"category": "transactional", "action": "opt_out", "channel": "phone",
                "note": "called: no more texts"}  # fmt: skip
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: values for the URL parts of the app's routes, to reach each one
URL_VALUES = {
    "practice": "shared", "phone": PATIENT, "item_id": 1, "phone_text": PATIENT,
    "reminder_id": "appt-1001", "id": "appt-1001", "webhook_id": "msg_" + "0" * 32, "inbound_id": 1,
}  # fmt: skip


@pytest.fixture
def staff(app):
    return create_staff(app)


def count(app, model, *conditions) -> int:
    with get_database_of(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*conditions))


def assert_refused(response) -> None:
    """The console's error page: 400, the same words whatever was wrong with the token."""
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert CSRF_REFUSED in text_of(response)
    assert response.headers.get("X-Request-ID")  # answered like any other request
    assert response.headers["Cache-Control"] == "no-store"


def rules(app, *, console: bool):
    for rule in app.url_map.iter_rules():
        methods = sorted(rule.methods & UNSAFE)
        if methods and rule.endpoint.startswith("console.") == console:
            path = app.url_for(rule.endpoint, **{k: URL_VALUES[k] for k in rule.arguments})
            yield rule.endpoint, methods, path


# --- the console's forms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [None, "", "forged-token", "IjAwMDAi.Z2F0ZXdheQ.c2lnbmF0dXJl"],
    ids=["missing", "empty", "forged", "shaped-like-one"],
)  # fmt: skip
def test_a_consent_change_without_the_sessions_token_writes_nothing(app, client, staff, token):
    sign_in(client)
    form = CONSENT_FORM if token is None else {**CONSENT_FORM, "csrf_token": token}
    assert_refused(client.post(CONSENT_PAGE, data=form))
    assert count(app, ConsentEvent) == 0
    assert count(app, AuditEvent, AuditEvent.action == "record_consent") == 0
    # the page's own token: recorded
    assert post_form(client, CONSENT_PAGE, CONSENT_FORM).status_code == 303
    assert count(app, ConsentEvent) == 1


def test_every_console_form_needs_the_token(app, client, staff):
    """Whatever console route takes a POST (or PUT, PATCH, DELETE): refused without the token,
    before the view runs."""
    sign_in(client)
    checked = []
    with app.test_request_context():
        routes = list(rules(app, console=True))
    for endpoint, methods, path in routes:
        for method in methods:
            assert_refused(client.open(path, method=method, data={"practice": "shared"}))
            checked.append(endpoint)
    assert {"console.sign_in", "console.sign_out", "console.find", "console.consent_form",
            "console.review_item"} <= set(checked)  # fmt: skip
    assert client.get("/console/").status_code == 200  # sign-out was refused too


def test_the_sign_in_form_needs_the_token(app, client, staff):
    client.get("/console/sign-in")
    form = {"email": EMAIL, "password": PASSWORD}
    assert_refused(client.post("/console/sign-in", data=form))
    assert_refused(client.post("/console/sign-in", data={**form, "csrf_token": "forged"}))
    assert count(app, StaffSession) == 0
    assert sign_in(client).status_code == 303


def test_another_sessions_token_is_refused(app, staff):
    """Two browsers signed in to the same account: each form needs its own session's token."""
    first, second = app.test_client(), app.test_client()
    sign_in(first)
    sign_in(second)
    theirs = csrf_of(first.get(CONSENT_PAGE))
    assert_refused(second.post(CONSENT_PAGE, data={**CONSENT_FORM, "csrf_token": theirs}))
    assert count(app, ConsentEvent) == 0
    assert first.post(CONSENT_PAGE, data={**CONSENT_FORM, "csrf_token": theirs}).status_code == 303


def test_a_token_from_a_signed_out_session_is_refused(client, staff):
    sign_in(client)
    old = csrf_of(client.get("/console/"))
    client.post("/console/sign-out", data={"csrf_token": old})
    sign_in(client)
    assert_refused(client.post("/console/find", data={"phone": PATIENT, "csrf_token": old}))


def test_the_token_is_read_from_the_form_only(client, staff):
    """Not from a header: the console runs no script, so only its forms send the token."""
    sign_in(client)
    token = csrf_of(client.get(CONSENT_PAGE))
    assert_refused(client.post(CONSENT_PAGE, data=CONSENT_FORM, headers={"X-CSRFToken": token}))


def test_a_token_signed_with_the_cookies_key_is_refused(app, client, staff):
    """Tokens are signed with a key of their own, derived from GATEWAY_SECRET_KEY: the session
    cookie's key (Flask-WTF's default) does not make one."""
    sign_in(client)
    client.get("/console/")
    with client.session_transaction("/console/") as cookie:
        value = cookie["csrf_token"]
    forged = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(value)
    assert_refused(client.post(CONSENT_PAGE, data={**CONSENT_FORM, "csrf_token": forged}))
    assert app.config["WTF_CSRF_SECRET_KEY"] not in (app.secret_key, app.secret_key.encode())


def test_a_form_left_open_for_hours_still_posts(app, client, staff):
    """The token lives as long as the staff session (Flask-WTF's own one-hour limit is off)."""
    with time_machine.travel(T0, tick=False) as traveller:
        sign_in(client)
        token = csrf_of(client.get(CONSENT_PAGE))
        for _ in range(9):  # the session stays alive on another tab
            traveller.shift(timedelta(minutes=20))
            assert client.get("/console/").status_code == 200
        response = client.post(CONSENT_PAGE, data={**CONSENT_FORM, "csrf_token": token})
    assert response.status_code == 303
    assert count(app, ConsentEvent) == 1


def test_forms_post_over_https_without_a_referrer(app, staff):
    """The console sends Referrer-Policy: no-referrer, so browsers send no Referer: the form
    must pass on its token alone (no strict referrer check over HTTPS)."""
    client = app.test_client()
    base = "https://console.example"
    token = csrf_of(client.get("/console/sign-in", base_url=base))
    form = {"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    response = client.post("/console/sign-in", base_url=base, data=form)
    assert response.status_code == 303
    home = client.get("/console/", base_url=base)
    assert home.headers["Referrer-Policy"] == "no-referrer"
    response = client.post(CONSENT_PAGE, base_url=base,
                           data={**CONSENT_FORM, "csrf_token": csrf_of(home)})  # fmt: skip
    assert response.status_code == 303


def test_every_web_worker_accepts_the_others_forms(app, make_app, database_url, staff):
    """Two apps on one database and one GATEWAY_SECRET_KEY stand for two gunicorn workers: the
    signing key is derived from the configured secret, so a form one served posts to the other."""
    other = make_app(database_url)
    assert other.secret_key == app.secret_key
    first, second = app.test_client(), other.test_client()
    sign_in(first)
    token = csrf_of(first.get(CONSENT_PAGE))
    second.set_cookie(COOKIE, first.get_cookie(COOKIE, path="/console").value, path="/console")
    response = second.post(CONSENT_PAGE, data={**CONSENT_FORM, "csrf_token": token})
    assert response.status_code == 303
    assert count(app, ConsentEvent) == 1


# --- the JSON API and the webhooks: no CSRF token ------------------------------------------------


def test_the_api_and_the_webhooks_need_no_csrf_token(app, client, staff, api, twilio):
    """A browser signed in to the console, and the same client talking to the API and taking
    Twilio's webhooks: neither needs (nor gets asked for) a console token."""
    sign_in(client)
    assert api.enqueue()["id"] == "appt-1001"
    assert api.delete("/api/v1/reminders/appt-1001",
                      query_string={"practice": "shared"}).status_code == 200  # fmt: skip
    response = twilio.inbound("STOP")
    assert response.status_code == 200
    assert response.mimetype in ("text/xml", "application/xml")
    assert twilio.status("SM" + "0" * 32, "delivered").status_code == 204


def test_no_route_outside_the_console_asks_for_a_csrf_token(app, client):
    """Every POST, PUT, PATCH or DELETE outside /console answers with its own authentication
    (a bearer token, Twilio's signature), never with a CSRF refusal."""
    with app.test_request_context():
        routes = list(rules(app, console=False))
    blueprints = {endpoint.split(".")[0] for endpoint, _, _ in routes}
    assert blueprints >= {"reminders", "contacts", "reviews", "events", "webhooks"}
    for endpoint, methods, path in routes:
        for method in methods:
            response = client.open(path, method=method, data={"x": "1"})
            assert response.status_code in (401, 403), (endpoint, method, response.status_code)
            assert "CSRF" not in response.get_data(as_text=True)
