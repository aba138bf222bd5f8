"""Fixtures: an app per test on a migrated scratch database (SQLite, and PostgreSQL when
GATEWAY_TEST_POSTGRES_URL names a server), a client, and a ``twilio`` helper that signs webhooks
with the real RequestValidator."""

from __future__ import annotations

import io
import os
import random
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from gateway import create_app
from gateway.services.dispatch import Dispatcher
from gateway.services.transport import ConsoleTransport
from gateway.store import migrate
from gateway.store.db import get_database
from gateway.store.models import Base

# The environment of the machine running the tests must not leak into them.
for _name in list(os.environ):
    if _name.startswith(("GATEWAY_", "TWILIO_")) and _name not in (
        "GATEWAY_TEST_POSTGRES_URL",
        "TWILIO_OPENAPI_SPEC",
    ):
        del os.environ[_name]
for _name in ("DATABASE_URL", "PUBLIC_BASE_URL"):
    os.environ.pop(_name, None)

# How long an example takes is the machine's load, not the code's: no per-example deadline and
# no "too slow" health check, so that property tests hold on a busy CI runner.
hypothesis_settings.register_profile(
    "gateway", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("gateway")

TESTS = Path(__file__).parent
PRACTICES_FILE = TESTS / "practices.toml"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
API_TOKEN = "test-api-token-0123456789"
PUBLIC_BASE_URL = "https://gateway.example.test"
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")

SHARED = "+17865550100"  # one number carrying both categories
SPLIT_TRANSACTIONAL = "+13125550110"
SPLIT_MARKETING_SERVICE = "MG0123456789abcdef0123456789abcdef"
PATIENT = "+13055550123"


def patient(n: int) -> str:
    """Another patient's number (caps are per number: tests that send many use many numbers)."""
    return f"+1305556{n:04d}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[str]:
    """A migrated scratch database for the session; dropped at the end."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gateway.sqlite3'}"
        migrate.upgrade(url)
        yield url
        return
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must set GATEWAY_TEST_POSTGRES_URL: every database test runs on both")
        pytest.skip("PostgreSQL: set GATEWAY_TEST_POSTGRES_URL to run these tests on it too")
    with scratch_postgres_database() as url:
        migrate.upgrade(url)
        yield url


class scratch_postgres_database:  # noqa: N801 - used like a function
    """A new database on the test server, dropped on exit."""

    def __init__(self) -> None:
        self.name = f"gateway_test_{uuid.uuid4().hex[:12]}"
        self.admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")

    def __enter__(self) -> str:
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        url = make_url(POSTGRES_URL).set(database=self.name)
        if "connect_timeout" not in url.query:  # the gateway's 3 s is for production's fast
            # failure; a test server on a loaded machine may take longer to fork a backend
            url = url.update_query_dict({"connect_timeout": "60"})
        return url.render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def app_config(database_url: str, instance: Path, **overrides: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "GATEWAY_CONFIG": str(PRACTICES_FILE),
        "GATEWAY_INSTANCE_PATH": str(instance),
        "GATEWAY_API_TOKEN": API_TOKEN,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "GATEWAY_ENV": "test",
        # a statement's deadline a busy machine cannot outrun (production's is 3 s); the tests of
        # that deadline set it back (test_db_outage)
        "GATEWAY_DATABASE_TIMEOUT": "30",
        **overrides,
    }


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Any]:
    """Create apps with the test settings (overridable); their pools close at teardown."""
    apps: list[Any] = []

    def make(database_url: str, **overrides: str) -> Any:
        app = create_app(app_config(database_url, tmp_path / "instance", **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        get_database_of(app).dispose()


@pytest.fixture
def app(database_url: str, make_app: Any) -> Iterator[Any]:
    app = make_app(database_url)
    yield app
    with get_database_of(app).engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def get_database_of(app: Any) -> Any:
    with app.app_context():
        return get_database()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def session(app: Any) -> Iterator[Any]:
    """A session of its own, for reading what the requests wrote."""
    with get_database_of(app).sessions() as session:
        yield session


class TwilioActions:
    """Posts webhooks the way Twilio does: form-encoded, signed against the public URL."""

    def __init__(self, client: Any, auth_token: str = AUTH_TOKEN) -> None:
        self.client = client
        self.validator = RequestValidator(auth_token)

    def sign(self, path: str, params: dict[str, str]) -> str:
        return self.validator.compute_signature(PUBLIC_BASE_URL + path, params)

    def post(self, path: str, params: dict[str, str], signature: str | None = None) -> Any:
        headers = {
            "X-Twilio-Signature": self.sign(path, params) if signature is None else signature
        }
        return self.client.post(path, data=params, headers=headers)

    def inbound(
        self,
        body: str,
        *,
        from_: str = PATIENT,
        to: str = SHARED,
        sid: str | None = None,
        **extra: str,
    ) -> Any:
        params = inbound_params(body, from_=from_, to=to, sid=sid, **extra)
        return self.post("/webhooks/twilio/inbound", params)

    def status(self, sid: str, status: str, **extra: str) -> Any:
        """A status callback for a message the shared practice sent to PATIENT."""
        params = {"MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status,
                  "AccountSid": "AC" + "1" * 32, "From": SHARED, "To": PATIENT,
                  "ApiVersion": "2010-04-01", **extra}  # fmt: skip
        return self.post("/webhooks/twilio/status", params)


def inbound_params(
    body: str, *, from_: str = PATIENT, to: str = SHARED, sid: str | None = None, **extra: str
) -> dict[str, str]:
    params = {
        "MessageSid": sid or new_sid(),
        "AccountSid": "AC" + "1" * 32,
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
        **extra,
    }
    return {k: v for k, v in params.items() if v is not None}


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


@pytest.fixture
def twilio(client: Any) -> TwilioActions:
    return TwilioActions(client)


@pytest.fixture
def sent(api: Any, dispatcher: Any, console: Any) -> str:
    """A reminder the console transport has sent; returns its provider SID."""
    api.enqueue()
    dispatcher.run_pass()
    return api.reminder()["provider_sid"]


#: a web form's express written consent to marketing (the split practice)
MARKETING_FORM = {
    "practice": "split",
    "disclosure": "I agree to receive marketing texts from Split Line Aesthetics. Consent is not a "
    "condition of purchase. Up to 3 msgs/day. Msg & data rates may apply. Reply STOP to cancel.",
    "page_url": "https://split.example/offers",
    "ip": "203.0.113.7",
    "user_agent": "Mozilla/5.0",
    "adult_attested": True,
}


def reminder_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /api/v1/reminders body for the shared practice."""
    body = {
        "id": "appt-1001",
        "practice": "shared",
        "to": "(305) 555-0123",
        "send_at": "2026-03-02T15:00:00Z",
        "template": "appointment_reminder",
        "params": {"appointment_time": "2026-03-03T14:30:00-05:00"},
        "expires_at": "2026-03-03T19:30:00Z",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def api(client: Any) -> Any:
    """The JSON API with a valid bearer token."""

    class Api:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}

        def get(self, path: str, **kwargs: Any) -> Any:
            return client.get(path, headers=self.headers, **kwargs)

        def post(self, path: str, **kwargs: Any) -> Any:
            return client.post(path, headers=self.headers, **kwargs)

        def delete(self, path: str, **kwargs: Any) -> Any:
            return client.delete(path, headers=self.headers, **kwargs)

        def patch(self, path: str, **kwargs: Any) -> Any:
            return client.patch(path, headers=self.headers, **kwargs)

        def enqueue(self, **overrides: Any) -> dict[str, Any]:
            response = self.post("/api/v1/reminders", json=reminder_body(**overrides))
            assert response.status_code == 201, response.get_json()
            return response.get_json()

        def reminder(self, reminder_id: str = "appt-1001", practice: str = "shared") -> dict:
            response = self.get(
                f"/api/v1/reminders/{reminder_id}", query_string={"practice": practice}
            )
            assert response.status_code == 200, response.get_json()
            return response.get_json()

        def contact(self, phone: str = PATIENT, practice: str = "shared") -> dict[str, Any]:
            response = self.get(f"/api/v1/contacts/{phone}", query_string={"practice": practice})
            assert response.status_code == 200, response.get_json()
            return response.get_json()

    return Api()


class Clock:
    """A clock the test sets; the dispatcher reads it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 2, 15, 0, 30, tzinfo=UTC))


@pytest.fixture
def console(app: Any) -> Any:
    """The console transport the app uses, writing to a buffer."""
    transport = ConsoleTransport(stream=io.StringIO())
    app.extensions["gateway.transport"] = transport
    return transport


@pytest.fixture
def dispatcher(app: Any, console: Any, clock: Clock) -> Any:
    return Dispatcher.from_app(app, clock=clock, owner="test-dispatcher", rng=random.Random(7))
