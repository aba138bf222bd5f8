"""The staff console's sign-in: hashed passwords, CSRF on every form, session expiry, sign-out,
locks after repeated failures, cookie flags, and practice scoping (another practice's pages are
404, as with a scoped API token). Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from console_support import (
    EMAIL,
    PASSWORD,
    create_staff,
    csrf_of,
    post_form,
    sign_in,
    text_of,
)
from sqlalchemy import func, select

from conftest import PATIENT, get_database_of
from gateway.store import accounts
from gateway.store.models import (
    AuditEvent,
    ConsentEvent,
    SignInFailure,
    StaffAccount,
    StaffSession,
)

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
COOKIE = "gateway_console"
CONSENT_FORM = {"category": "transactional", "action": "opt_out", "channel": "phone",
                "note": "called: no more texts"}  # fmt: skip


@pytest.fixture
def staff(app):
    return create_staff(app)


def count(app, model, *conditions) -> int:
    with get_database_of(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*conditions))


def test_the_root_url_leads_to_the_console(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/console/"


@pytest.mark.parametrize(
    "path",
    ["/console/", "/console/shared/dashboard", "/console/shared/reviews", "/console/shared/audit",
     f"/console/shared/patients/{PATIENT}"],
)  # fmt: skip
def test_every_page_needs_a_signed_in_staff_member(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/sign-in?next=")


def test_sign_in_then_sign_out(app, client, staff):
    response = sign_in(client)
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http outside production
    home = client.get("/console/")
    assert home.status_code == 200
    assert EMAIL in text_of(home) and "Find a patient" in text_of(home)
    assert count(app, StaffSession) == 1

    response = client.post("/console/sign-out", data={"csrf_token": csrf_of(home)})
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/sign-in"
    assert "You are signed out." in text_of(client.get("/console/sign-in"))
    assert client.get("/console/").status_code == 302
    assert count(app, StaffSession) == 0
    actions = [a for (a,) in _audit(app)]
    assert actions == ["sign_in", "sign_out"]


def _audit(app):
    with get_database_of(app).sessions() as session:
        return session.execute(select(AuditEvent.action).order_by(AuditEvent.id)).all()


def test_a_signed_out_session_cookie_cannot_be_used_again(client, staff):
    sign_in(client)
    stolen = client.get_cookie(COOKIE, path="/console").value
    home = client.get("/console/")
    client.post("/console/sign-out", data={"csrf_token": csrf_of(home)})
    client.set_cookie(COOKIE, stolen, path="/console")
    assert client.get("/console/").status_code == 302


def test_sign_in_comes_back_to_the_page_asked_for(client, staff):
    asked = client.get("/console/shared/dashboard").headers["Location"]
    assert asked == "/console/sign-in?next=/console/shared/dashboard"
    response = sign_in(client, next="/console/shared/dashboard")
    assert response.headers["Location"] == "/console/shared/dashboard"


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/console/", "/api/v1/reminders",
     "/console/sign-out", "/console\\..\\evil", "javascript:alert(1)",
     "/console/\r\nSet-Cookie: x=1", "/console/\x00"],
)  # fmt: skip
def test_sign_in_never_leads_off_the_console(client, staff, target):
    assert sign_in(client, next=target).headers["Location"] == "/console/"


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(app, client, staff):
    wrong = sign_in(client, password="not the password")
    unknown = sign_in(client, email="nobody@shared.example")
    assert wrong.status_code == unknown.status_code == 401
    assert "Sign-in failed" in text_of(wrong)
    assert text_of(wrong).replace(EMAIL, "X") == text_of(unknown).replace(
        "nobody@shared.example", "X"
    )
    assert count(app, StaffSession) == 0
    assert client.get("/console/").status_code == 302


@pytest.mark.parametrize("email", ["ana\x00@shared.example", "x" * 300 + "@shared.example"])
def test_an_email_no_account_can_have_is_refused_like_any_other(client, staff, email):
    assert sign_in(client, email=email).status_code == 401


def test_an_empty_form_is_422(client, staff):
    response = sign_in(client, password="")
    assert response.status_code == 422
    assert "Enter your e-mail address and password." in text_of(response)


def test_passwords_are_stored_hashed(app, staff):
    with get_database_of(app).sessions() as session:
        stored = session.scalar(select(StaffAccount.password_hash))
    assert stored.startswith("scrypt:")
    assert PASSWORD not in stored


def test_repeated_failures_lock_the_account_for_a_while(app, client, staff):
    with time_machine.travel(T0, tick=False):
        for _ in range(accounts.FREE_FAILURES):
            assert sign_in(client, password="guess guess guess").status_code == 401
        # locked: even the right password is refused, with the same answer
        refused = sign_in(client)
        assert refused.status_code == 401
        assert "pauses for a few minutes" in text_of(refused)
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        assert sign_in(client).status_code == 303
    with get_database_of(app).sessions() as session:
        account = session.scalar(select(StaffAccount))
        assert (account.failed_sign_ins, account.locked_until) == (0, None)


def test_each_further_failure_doubles_the_lock(app, client, staff):
    with time_machine.travel(T0, tick=False):
        for _ in range(accounts.FREE_FAILURES):
            sign_in(client, password="guess guess guess")
    with time_machine.travel(T0 + timedelta(minutes=1, seconds=1), tick=False):
        sign_in(client, password="guess guess guess")  # the sixth: two minutes
    with get_database_of(app).sessions() as session:
        locked_until = session.scalar(select(StaffAccount.locked_until))
    assert locked_until == T0 + timedelta(minutes=3, seconds=1)


def test_many_failures_from_one_address_are_refused_before_any_password_check(app, client, staff):
    app.extensions["console.failed_sign_ins"].limit = 3
    for n in range(3):
        assert sign_in(client, email=f"guess{n}@shared.example").status_code == 401
    response = sign_in(client)  # the right password, but from the same address
    assert response.status_code == 429
    assert "Too many failed sign-ins" in text_of(response)


def test_the_limit_per_address_holds_across_web_workers(app, make_app, database_url, staff):
    """Two apps on one database stand for two gunicorn workers: the failures counted by one
    refuse the address on the other. Only a keyed hash of the address is stored."""
    other = make_app(database_url)
    for worker in (app, other):
        worker.extensions["console.failed_sign_ins"].limit = 4
    first, second = app.test_client(), other.test_client()
    for n in range(2):
        assert sign_in(first, email=f"guess{n}@shared.example").status_code == 401
        assert sign_in(second, email=f"other{n}@shared.example").status_code == 401
    assert sign_in(first).status_code == 429
    assert sign_in(second).status_code == 429
    with get_database_of(app).sessions() as session:
        stored = session.scalars(select(SignInFailure.address_hash)).all()
    assert len(stored) == 4 and all("127.0.0.1" not in h for h in stored)
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=16), tick=False):
        assert sign_in(second).status_code == 303  # the window passed


def test_forms_without_the_sessions_csrf_token_are_refused(app, client, staff):
    sign_in(client)
    path = f"/console/shared/patients/{PATIENT}/consent"
    missing = client.post(path, data=CONSENT_FORM)
    forged = client.post(path, data={**CONSENT_FORM, "csrf_token": "forged-token"})
    assert missing.status_code == forged.status_code == 400
    assert "did not come from this site" in text_of(missing)
    assert count(app, ConsentEvent) == 0
    assert count(app, AuditEvent, AuditEvent.action == "record_consent") == 0
    # with the page's token the same form is recorded
    assert post_form(client, path, CONSENT_FORM).status_code == 303
    assert count(app, ConsentEvent) == 1


def test_sign_in_and_sign_out_need_the_token_too(app, client, staff):
    client.get("/console/sign-in")
    response = client.post("/console/sign-in", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 400
    assert count(app, StaffSession) == 0
    sign_in(client)
    assert client.post("/console/sign-out").status_code == 400
    assert client.get("/console/").status_code == 200  # still signed in


def test_a_token_from_before_sign_in_is_renewed(client, staff):
    before = csrf_of(client.get("/console/sign-in"))
    sign_in(client)
    after = csrf_of(client.get("/console/"))
    assert before != after
    assert client.post("/console/sign-out", data={"csrf_token": before}).status_code == 400


def test_an_idle_session_ends_after_30_minutes(client, staff):
    with time_machine.travel(T0, tick=False) as traveller:
        sign_in(client)
        for _ in range(3):  # active: each request moves the idle deadline
            traveller.shift(timedelta(minutes=29))
            assert client.get("/console/").status_code == 200
        traveller.shift(timedelta(minutes=31))
        response = client.get("/console/shared/dashboard")
        assert response.status_code == 302
        assert "/console/sign-in" in response.headers["Location"]
        assert "Your session has ended" in text_of(client.get(response.headers["Location"]))


def test_a_session_ends_after_8_hours_however_active(client, staff):
    with time_machine.travel(T0, tick=False) as traveller:
        sign_in(client)
        for _ in range(8 * 3 - 1):
            traveller.shift(timedelta(minutes=20))
            assert client.get("/console/").status_code == 200
        traveller.shift(timedelta(minutes=21))  # 8 h 1 min after sign-in
        assert client.get("/console/").status_code == 302


def test_the_expiry_times_are_settings(app, client, staff):
    app.config["CONSOLE_IDLE_TIMEOUT"] = timedelta(minutes=5)
    with time_machine.travel(T0, tick=False) as traveller:
        sign_in(client)
        traveller.shift(timedelta(minutes=6))
        assert client.get("/console/").status_code == 302


def test_disabling_an_account_ends_its_sessions_at_once(app, client, staff):
    sign_in(client)
    with get_database_of(app).sessions() as session:
        accounts.set_active(session, EMAIL, False)
    assert client.get("/console/").status_code == 302
    assert sign_in(client).status_code == 401


@pytest.mark.parametrize(
    "path",
    ["/console/split/dashboard", "/console/split/reviews", "/console/split/audit",
     "/console/split/reviews/1", f"/console/split/patients/{PATIENT}",
     f"/console/split/patients/{PATIENT}/consent", "/console/nowhere/dashboard"],
)  # fmt: skip
def test_another_practices_pages_do_not_exist(client, staff, path):
    sign_in(client)
    response = client.get(path)
    assert response.status_code == 404
    assert "No such page" in text_of(response) or "No such review item" in text_of(response)


def test_looking_up_a_number_in_another_practice_is_404(app, client, staff):
    sign_in(client)
    token = csrf_of(client.get("/console/"))
    response = client.post("/console/find", data={"practice": "split", "phone": "3055550123",
                                                   "csrf_token": token})  # fmt: skip
    assert response.status_code == 404
    assert count(app, AuditEvent, AuditEvent.action == "read_contact") == 0


def test_a_consent_change_for_another_practice_writes_nothing(app, client, staff):
    sign_in(client)
    token = csrf_of(client.get("/console/"))
    response = client.post(f"/console/split/patients/{PATIENT}/consent",
                           data={**CONSENT_FORM, "csrf_token": token})  # fmt: skip
    assert response.status_code == 404
    assert count(app, ConsentEvent) == 0


def test_an_account_of_two_practices_sees_both(app, client):
    create_staff(app, practices=("shared", "split"))
    sign_in(client)
    home = text_of(client.get("/console/"))
    assert "Shared Line Clinic" in home and "Split Line Aesthetics" in home
    for slug in ("shared", "split"):
        assert client.get(f"/console/{slug}/dashboard").status_code == 200


def test_the_cookie_is_secure_in_production(make_app, database_url):
    app = make_app(
        database_url, GATEWAY_ENV="production", TWILIO_ACCOUNT_SID="AC" + "1" * 32,
        GATEWAY_ENCRYPTION_KEYS="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        GATEWAY_HASH_KEY="h" * 40, GATEWAY_SECRET_KEY="s" * 40,
    )  # fmt: skip
    assert app.secret_key == "s" * 40
    response = app.test_client().get("/console/sign-in")
    assert "Secure" in response.headers["Set-Cookie"]
    assert "HttpOnly" in response.headers["Set-Cookie"]


def test_console_pages_are_not_cached_framed_or_scripted(client):
    response = client.get("/console/sign-in")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none'
    assert response.headers["Referrer-Policy"] == "no-referrer"
    css = client.get("/console/static/console.css")
    assert css.status_code == 200
    assert css.headers.get("Cache-Control") != "no-store"
    css.close()
