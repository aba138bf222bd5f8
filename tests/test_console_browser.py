"""The staff console in a real browser: Playwright drives Debian's Chromium (``/usr/bin/chromium``;
``make chromium`` installs it) against the app served over HTTP on loopback.

The front-desk scenario: an account made with ``flask staff create``, sign-in, a patient who
texted STOP through a signed webhook, the opt-out in the timeline, an opt-in taken by phone, and
a reminder that then goes out in the next dispatch pass, seen as sent on the patient page. Plus
keyboard use and a phone-sized screen. Runs on SQLite and on PostgreSQL like every database test.

A screenshot of each page is kept in ``tests/artifacts/`` (git-ignored). ``UPDATE_SCREENSHOTS=1``
also refreshes ``docs/console-patient.png``, the README's picture of the patient page.

Without Chromium the tests are skipped, except under CI, where they must run.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import time_machine
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from conftest import API_TOKEN, AUTH_TOKEN, PATIENT, SHARED, inbound_params, reminder_body
from gateway.services.dispatch import Dispatcher
from gateway.services.transport import ConsoleTransport
from gateway.store.models import Base, utcnow
from twilio_server import Reply, TwilioServer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
README_SCREENSHOT = ROOT / "docs" / "console-patient.png"
EMAIL = "frontdesk@shared.example"
PASSWORD = "a long front desk passphrase"
TIMEOUT_MS = 60_000  # a guard against a hang: a loaded machine may take seconds per step


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"{CHROMIUM} is missing (`make chromium` installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def daytime_in_miami():
    """Inside 08:00-20:00 in the patient's zone whenever the suite runs; the clock still ticks."""
    with time_machine.travel(datetime(2026, 3, 2, 15, 0, tzinfo=UTC), tick=True):
        yield


class LiveConsole:
    """The app on loopback, with a console transport and a way to text it as Twilio would."""

    def __init__(self, app, url: str, console: bool = True) -> None:
        self.app, self.url = app, url
        if console:
            self.transport = ConsoleTransport(stream=io.StringIO())
            app.extensions["gateway.transport"] = self.transport

    def text(self, body: str, sid: str | None = None) -> None:
        """A signed inbound webhook from the patient's phone, over HTTP."""
        params = inbound_params(body, to=SHARED, sid=sid)
        url = self.url + "/webhooks/twilio/inbound"
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        response = requests.post(url, data=params, headers={"X-Twilio-Signature": signature},
                                 timeout=60)  # fmt: skip
        assert response.status_code == 200, response.text
        response.close()

    def enqueue(self, **overrides) -> None:
        """The scheduling system enqueues a reminder over the API."""
        body = reminder_body(send_at=utcnow().isoformat(),
                             expires_at=(utcnow() + timedelta(days=1)).isoformat(), **overrides)
        response = requests.post(self.url + "/api/v1/reminders", json=body, timeout=60,
                                 headers={"Authorization": f"Bearer {API_TOKEN}"})  # fmt: skip
        assert response.status_code == 201, response.text
        response.close()

    def dispatch(self):
        return Dispatcher.from_app(self.app).run_pass()


@pytest.fixture
def live(database_url, make_app):
    server = make_server("127.0.0.1", 0, None, threaded=True)  # bind first: the URL is config
    url = f"http://127.0.0.1:{server.server_port}"
    app = make_app(database_url, PUBLIC_BASE_URL=url)
    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveConsole(app, url)
    server.shutdown()
    server.server_close()
    thread.join(timeout=60)
    with app.extensions["gateway.db"].engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def create_account(app) -> None:
    """The one command an administrator runs."""
    result = app.test_cli_runner().invoke(
        args=["staff", "create", EMAIL, "--practice", "shared", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output


def sign_in(page, url: str) -> None:
    page.goto(url + "/")
    assert page.url.startswith(url + "/console/sign-in")
    page.get_by_label("E-mail address").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Find a patient").wait_for()


def test_front_desk_records_an_opt_in_by_phone_and_the_reminder_goes_out(live, page):
    from playwright.sync_api import expect

    create_account(live.app)
    live.text("STOP")
    live.text("I'll stop by at 3")  # a possible opt-out, for the review queue
    live.enqueue()

    page.goto(live.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")
    sign_in(page, live.url)

    # find the patient by the number as the caller says it
    page.get_by_label("Phone number").fill("(305) 555-0123")
    page.get_by_label("Phone number").press("Enter")
    expect(page.get_by_role("heading", name="Patient +1 305-555-0123")).to_be_visible()
    consent = page.get_by_role("table", name="Consent now")
    expect(consent.get_by_role("row", name="Care messages")).to_contain_text("Opted out")
    timeline = page.locator("section", has=page.get_by_role("heading", name="Consent timeline"))
    expect(timeline.get_by_role("listitem").first).to_contain_text("Opt-out")
    expect(timeline).to_contain_text("Text from the patient")
    expect(timeline).to_contain_text("STOP")
    upcoming = page.locator("section", has=page.get_by_role("heading", name="Upcoming reminders"))
    expect(upcoming).to_contain_text("appt-1001")

    # the patient calls: record the opt-in taken by phone
    page.get_by_role("link", name="Record a consent change").click()
    expect(page.get_by_role("heading", name="Record a consent change")).to_be_visible()
    page.get_by_label("Care messages").check()
    page.get_by_label("Opt-in: send these messages again").check()
    page.get_by_label("How the patient told us").select_option("phone")
    page.get_by_label("Note").fill("Called at 10:05: wants appointment reminders again.")
    screenshot(page, "consent-form")
    page.get_by_role("button", name="Record the change").click()
    expect(page.get_by_role("status")).to_contain_text("Recorded: Opt-in for care messages")
    expect(consent.get_by_role("row", name="Care messages")).to_contain_text("Opted in")
    expect(timeline.get_by_role("listitem").first).to_contain_text("Opt-in")
    expect(timeline.get_by_role("listitem").first).to_contain_text(EMAIL)

    # the very next dispatch pass sends the reminder
    summary = live.dispatch()
    assert summary.sent == 1, summary
    ((sms, _),) = live.transport.sent
    assert sms.to == PATIENT
    page.reload()
    messages = page.locator("section", has=page.get_by_role("heading", name="Recent messages"))
    first = messages.get_by_role("row").nth(1)
    expect(first).to_contain_text("To the patient")
    expect(first).to_contain_text("reminder of your appointment")
    expect(first).to_contain_text("sent")
    expect(upcoming).to_contain_text("None.")
    patient_png = screenshot(page, "patient")
    if os.environ.get("UPDATE_SCREENSHOTS") or not README_SCREENSHOT.exists():
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(patient_png, README_SCREENSHOT)

    # the review queue: read the possible opt-out and dismiss it
    page.get_by_role("link", name="Review queue").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.get_by_role("table")).to_contain_text("I'll stop by at 3")
    screenshot(page, "review-queue")
    page.get_by_role("table").get_by_role("link", name="Review").first.click()
    page.get_by_role("button", name="Not an opt-out").click()
    expect(page.get_by_role("status")).to_contain_text("Dismissed")
    expect(page.get_by_text("Nothing to review.")).to_be_visible()

    # the dashboard: today's send and opt-out on the chart
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("img", name="Messages sent, delivered, failed and opt-outs per day"))\
        .to_be_visible()  # fmt: skip
    expect(page.get_by_text("1 sent, 0 delivered, 0 failed, 1 opt-outs")).to_be_visible()
    screenshot(page, "dashboard")

    # sign out: the console is closed again
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    page.goto(live.url + "/console/shared/dashboard")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_the_console_works_from_the_keyboard(live, page):
    create_account(live.app)
    page.goto(live.url + "/console/sign-in")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused.strip() == "Skip to main content"
    # focus is visible: the outline of the focused element is drawn
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.get_by_label("E-mail address").focus()
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Find a patient").wait_for()
    page.get_by_label("Phone number").focus()
    page.keyboard.type("305 555 0123")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Patient +1 305-555-0123").wait_for()


def test_the_patient_page_fits_a_phone_screen(live, browser):
    create_account(live.app)
    live.text("STOP")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)  # fmt: skip
    context.set_default_timeout(TIMEOUT_MS)
    phone = context.new_page()
    try:
        sign_in(phone, live.url)
        phone.goto(f"{live.url}/console/shared/patients/{PATIENT}")
        phone.get_by_role("heading", name="Consent timeline").wait_for()
        overflow = phone.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
        screenshot(phone, "patient-phone")
    finally:
        context.close()


@pytest.fixture
def live_twilio(database_url, make_app):
    """The app on loopback, sending through the real twilio SDK to the local Twilio-compatible
    server (whose answers a test scripts)."""
    with TwilioServer("AC" + "1" * 32, AUTH_TOKEN) as twilio_server:
        server = make_server("127.0.0.1", 0, None, threaded=True)
        url = f"http://127.0.0.1:{server.server_port}"
        app = make_app(database_url, PUBLIC_BASE_URL=url, TWILIO_ACCOUNT_SID="AC" + "1" * 32,
                       TWILIO_API_BASE_URL=twilio_server.url)  # fmt: skip
        server.app = app
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        live = LiveConsole(app, url, console=False)
        live.twilio = twilio_server
        yield live
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.extensions["gateway.transport"].close()
        with app.extensions["gateway.db"].engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


def test_the_console_says_who_did_what_and_what_twilio_errors_mean(live_twilio, page):
    from playwright.sync_api import expect

    live = live_twilio
    create_account(live.app)
    live.text("HELP")  # answered automatically
    live.text("I'll stop by at 3")  # a possible opt-out, for the review queue
    live.enqueue()
    live.twilio.script(Reply(400, code=21610))  # the carrier holds an opt-out the gateway missed
    assert live.dispatch().failed == 1
    sign_in(page, live.url)
    page.goto(f"{live.url}/console/shared/patients/{PATIENT}")

    # the review item shows its text, not only a link
    reviews = page.locator("section", has=page.get_by_role("heading", name="Possible opt-outs"))
    expect(reviews).to_contain_text("I'll stop by at 3")
    expect(reviews.get_by_role("link", name="Review")).to_be_visible()

    # the automatic reply is in the messages, and the failed reminder's code reads in words
    messages = page.locator("section", has=page.get_by_role("heading", name="Recent messages"))
    reply = messages.get_by_role("row").filter(has_text="automatic reply").first
    expect(reply).to_contain_text("To the patient (automatic reply)")
    expect(reply).to_contain_text("Reply STOP to cancel")
    failed = messages.get_by_role("row").filter(has_text="reminder of your appointment")
    expect(failed).to_contain_text("failed")
    expect(failed).to_contain_text("Twilio error 21610: the patient opted out at the carrier")

    # the carrier's opt-out: Twilio refused the practice's text; the patient texted nothing
    timeline = page.locator("section", has=page.get_by_role("heading", name="Consent timeline"))
    event = timeline.get_by_role("listitem").first
    expect(event).to_contain_text("Opt-out")
    expect(event).to_contain_text("Twilio refused a text to the patient")
    expect(event).to_contain_text("Practice number the refused text was sent from")
    expect(event).not_to_contain_text("Practice number texted")
    expect(event).to_contain_text("Twilio error 21610: the patient opted out")
    screenshot(page, "patient-carrier-opt-out")

    # the dashboard: totals called totals, and every axis label inside the chart
    page.get_by_role("link", name="Dashboard").click()
    totals = page.get_by_text("In total over the 30 days to today")
    expect(totals).to_be_visible()
    expect(totals).to_contain_text("1 failed, 1 opt-outs")
    extents = page.evaluate(
        """() => {
            const svg = document.querySelector("svg.chart");
            const width = svg.viewBox.baseVal.width;
            return Array.from(svg.querySelectorAll("text")).map(t => {
                const box = t.getBBox();
                return [t.textContent, box.x, box.x + box.width, width];
            });
        }"""
    )
    assert extents, "the chart has axis labels"
    for text, left, right, width in extents:
        assert left >= 0 and right <= width, f"axis label {text!r} is clipped: {left}..{right}"
    screenshot(page, "dashboard-totals")
