"""The senders: TwilioTransport through the real twilio SDK against a local Twilio-compatible
server (tests/twilio_server.py), ConsoleTransport, and transport_for."""

from __future__ import annotations

import base64
import io
import re
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from gateway.core.errors import GatewayError
from gateway.services.transport import (
    ConsoleTransport,
    LookupUnsupported,
    OutboundSms,
    PermanentSendError,
    RetryableSendError,
    SendError,
    SendResult,
    Transport,
    TwilioTransport,
    UnknownOutcomeError,
    transport_for,
)
from twilio_server import Hold, Reply, TwilioServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fedcba9876543210fedcba9876543210"
NUMBER = "+17865550100"
SERVICE = "MG" + "0123456789abcdef" * 2
PATIENT = "+13055550123"
BODY = "Alluring Plastic Surgery: reminder for Tue 3 PM. Call +1 786-305-8649. Reply STOP to end."
CALLBACK = "https://gateway.example.test/webhooks/twilio/status"
SID = re.compile(r"^SM[0-9a-f]{32}$")


@pytest.fixture
def server() -> Iterator[TwilioServer]:
    with TwilioServer(ACCOUNT_SID, AUTH_TOKEN) as server:
        yield server


@pytest.fixture
def transport(server: TwilioServer) -> Iterator[TwilioTransport]:
    with TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url=server.url, timeout=60) as t:
        yield t


def sms(sender: str = NUMBER, status_callback: str | None = CALLBACK) -> OutboundSms:
    return OutboundSms(to=PATIENT, sender=sender, body=BODY, status_callback=status_callback)


def assert_private(text: str) -> None:
    """Neither the body nor the phone number (in any usual form) is in ``text``."""
    for secret in (BODY, PATIENT, PATIENT[2:], "305-555-0123", "5550123"):
        assert secret not in text


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


# --- TwilioTransport against the local server -------------------------------------------


def test_send_from_a_number(server: TwilioServer, transport: TwilioTransport) -> None:
    result = transport.send(sms())

    assert isinstance(result, SendResult)
    assert SID.match(result.sid)
    assert result.status == "queued"
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.form == {"To": PATIENT, "From": NUMBER, "Body": BODY, "StatusCallback": CALLBACK}
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {credentials}"
    assert request.headers["User-Agent"].startswith("twilio-python/9.")
    (message,) = server.messages
    assert message["sid"] == result.sid
    assert message["status_callback"] == CALLBACK
    assert (message["to"], message["from"], message["body"]) == (PATIENT, NUMBER, BODY)


def test_send_through_a_messaging_service(server: TwilioServer, transport: TwilioTransport) -> None:
    result = transport.send(sms(sender=SERVICE, status_callback=None))

    assert SID.match(result.sid)
    assert result.status == "accepted"
    (request,) = server.requests
    assert request.form == {"To": PATIENT, "MessagingServiceSid": SERVICE, "Body": BODY}
    (message,) = server.messages
    assert message["messaging_service_sid"] == SERVICE
    assert message["status_callback"] is None


def in_a_minute() -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)


@pytest.mark.parametrize(
    ("reply", "error", "code", "http_status", "retry_after"),
    [
        (Reply(429, code=20429, retry_after=2), RetryableSendError, 20429, 429, 2.0),
        (Reply(429, code=20429, retry_after=0.5), RetryableSendError, 20429, 429, 0.5),
        (Reply(429, code=20429), RetryableSendError, 20429, 429, None),
        (Reply(400, code=20429), RetryableSendError, 20429, 400, None),
        (Reply(500), RetryableSendError, 20500, 500, None),
        (Reply(503, retry_after=30), RetryableSendError, 20500, 503, 30.0),
        (Reply(502, code=502), RetryableSendError, None, 502, None),
        (Reply(400, code=21610), PermanentSendError, 21610, 400, None),
        (Reply(400, code=21211), PermanentSendError, 21211, 400, None),
        (Reply(400, code=21614), PermanentSendError, 21614, 400, None),
        (Reply(401), PermanentSendError, 20003, 401, None),
        (Reply(404, code=20404), PermanentSendError, 20404, 404, None),
    ],
    ids=lambda v: repr(v) if isinstance(v, Reply) else None,
)
def test_error_answers_are_classified(
    server: TwilioServer,
    transport: TwilioTransport,
    reply: Reply,
    error: type[SendError],
    code: int | None,
    http_status: int,
    retry_after: float | None,
) -> None:
    server.script(reply)

    with pytest.raises(error) as caught:
        transport.send(sms())

    exc = caught.value
    assert (exc.code, exc.http_status, exc.retry_after) == (code, http_status, retry_after)
    assert exc.retryable is (error is RetryableSendError)
    assert isinstance(exc, SendError) and isinstance(exc, GatewayError)
    assert f"HTTP {http_status}" in str(exc)
    if code is not None:
        assert str(code) in str(exc)
    assert_private(full_text(exc))
    assert server.messages == []
    # the script is used up: the next send is accepted
    assert transport.send(sms()).status == "queued"


def test_retry_after_as_an_http_date(server: TwilioServer, transport: TwilioTransport) -> None:
    server.script(Reply(503, retry_after=in_a_minute()))

    with pytest.raises(RetryableSendError) as caught:
        transport.send(sms())

    assert caught.value.retry_after is not None
    assert 50 <= caught.value.retry_after <= 60


def test_twilio_error_text_quoting_the_number_is_not_copied(
    server: TwilioServer, transport: TwilioTransport
) -> None:
    server.script(Reply(400, code=21211))  # "The 'To' number +1305... is not a valid phone number."

    with pytest.raises(PermanentSendError) as caught:
        transport.send(sms())

    assert str(caught.value) == "Twilio send: HTTP 400, error 21211: invalid 'To' number"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert_private(full_text(caught.value))


def test_wrong_credentials_are_permanent(server: TwilioServer) -> None:
    with (
        TwilioTransport(ACCOUNT_SID, "0" * 32, api_base_url=server.url) as transport,
        pytest.raises(PermanentSendError) as caught,
    ):
        transport.send(sms())

    assert (caught.value.code, caught.value.http_status) == (20003, 401)
    assert server.messages == []


def test_a_read_timeout_leaves_the_outcome_unknown(server: TwilioServer) -> None:
    server.script(Hold())  # Twilio takes the message, but only answers after the client gave up
    with TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url=server.url, timeout=0.3) as t:
        sent_since = datetime.now(UTC)
        with pytest.raises(UnknownOutcomeError) as caught:
            t.send(sms())
        server.release()

        assert not caught.value.retryable
        assert (caught.value.code, caught.value.http_status, caught.value.retry_after) == (
            None,
            None,
            None,
        )
        assert "ReadTimeout" in str(caught.value)
        # the lost send is found by looking it up
        hang_guard = time.monotonic() + 600
        while not server.messages and time.monotonic() < hang_guard:
            time.sleep(0.05)
        found = t.find(PATIENT, sms().body, sent_since)
        assert found is not None and found.sid == server.messages[0]["sid"]
        assert_private(full_text(caught.value))
        # the same transport goes on sending once the server answers in time
        assert t.send(sms()).status == "queued"


def test_latency_within_the_timeout_is_fine() -> None:
    with (
        TwilioServer(ACCOUNT_SID, AUTH_TOKEN, latency=0.2) as server,
        TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url=server.url, timeout=60) as t,
    ):
        started = time.monotonic()
        assert t.send(sms()).status == "queued"
        assert time.monotonic() - started >= 0.2


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_is_retryable() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with (
        TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url=url, timeout=0.5) as transport,
        pytest.raises(RetryableSendError) as caught,
    ):
        transport.send(sms())

    assert caught.value.retryable
    assert (caught.value.code, caught.value.http_status) == (None, None)
    assert "ConnectionError" in str(caught.value)
    assert not isinstance(caught.value, UnknownOutcomeError)  # refused: it never reached Twilio
    assert_private(full_text(caught.value))


def test_fetch_follows_the_status(server: TwilioServer, transport: TwilioTransport) -> None:
    sent = transport.send(sms())
    assert transport.fetch(sent.sid) == SendResult(sent.sid, "queued")

    server.set_status(sent.sid, "delivered")

    assert transport.fetch(sent.sid) == SendResult(sent.sid, "delivered")
    assert server.requests[-1].method == "GET"
    assert (
        server.requests[-1].path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sent.sid}.json"
    )


def test_fetch_of_an_unknown_message(transport: TwilioTransport) -> None:
    with pytest.raises(PermanentSendError) as caught:
        transport.fetch("SM" + "0" * 32)

    assert (caught.value.code, caught.value.http_status) == (20404, 404)


def test_concurrent_sends_share_one_client(server: TwilioServer) -> None:
    server.script(*[Reply(429, code=20429, retry_after=7)] * 6)
    with TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url=server.url) as transport:

        def send(_: int) -> SendResult | SendError:
            try:
                return transport.send(sms())
            except SendError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(send, range(30)))

    results = [o for o in outcomes if isinstance(o, SendResult)]
    errors = [o for o in outcomes if isinstance(o, SendError)]
    assert len(results) == 24 and len(errors) == 6
    assert len({r.sid for r in results}) == 24
    assert all(e.retry_after == 7 and e.code == 20429 for e in errors)
    assert len(server.messages) == 24


def test_outbound_sms_repr_hides_body_and_number() -> None:
    text = repr(sms())
    assert_private(text)
    assert "+1******0123" in text


# --- status callbacks -----------------------------------------------------------------------


class CallbackReceiver:
    """A tiny HTTP server standing in for the gateway's status webhook."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                receiver.received.append((self.path, form, dict(self.headers.items())))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/webhooks/twilio/status"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    yield receiver
    receiver.close()


def test_status_callbacks_are_signed_like_twilio(
    server: TwilioServer, transport: TwilioTransport, receiver: CallbackReceiver
) -> None:
    sent = transport.send(sms(status_callback=receiver.url))

    assert server.send_status(sent.sid, "sent") == 204
    assert server.send_status(sent.sid, "undelivered", error_code=30006) == 204

    validator = RequestValidator(AUTH_TOKEN)
    (_, first, _), (path, form, headers) = receiver.received
    assert path == "/webhooks/twilio/status"
    assert first["MessageStatus"] == "sent" and "ErrorCode" not in first
    assert form == {
        "MessageSid": sent.sid,
        "MessageStatus": "undelivered",
        "SmsSid": sent.sid,
        "SmsStatus": "undelivered",
        "AccountSid": ACCOUNT_SID,
        "From": NUMBER,
        "To": PATIENT,
        "ApiVersion": "2010-04-01",
        "ErrorCode": "30006",
    }
    signature = headers["X-Twilio-Signature"]
    assert validator.validate(receiver.url, form, signature)
    assert not validator.validate(receiver.url, {**form, "MessageStatus": "delivered"}, signature)
    assert not RequestValidator("0" * 32).validate(receiver.url, form, signature)
    assert transport.fetch(sent.sid) == SendResult(sent.sid, "undelivered", error_code=30006)


def test_deliver_all_reports_messaging_service_messages(
    server: TwilioServer, transport: TwilioTransport, receiver: CallbackReceiver
) -> None:
    via_service = transport.send(sms(sender=SERVICE, status_callback=receiver.url))
    via_number = transport.send(sms(status_callback=receiver.url))
    without_callback = transport.send(sms(status_callback=None))

    assert server.deliver_all() == [204, 204, None]
    assert server.deliver_all() == []  # delivered is final

    forms = {form["MessageSid"]: form for _, form, _ in receiver.received}
    assert set(forms) == {via_service.sid, via_number.sid}
    assert forms[via_service.sid]["MessagingServiceSid"] == SERVICE
    assert "MessagingServiceSid" not in forms[via_number.sid]
    assert all(form["MessageStatus"] == "delivered" for form in forms.values())
    for _, form, headers in receiver.received:
        assert RequestValidator(AUTH_TOKEN).validate(
            receiver.url, form, headers["X-Twilio-Signature"]
        )
    assert server.message(without_callback.sid)["status"] == "delivered"


# --- ConsoleTransport and transport_for ---------------------------------------------------


@pytest.mark.parametrize(("sender", "label"), [(NUMBER, "from"), (SERVICE, "messaging service")])
def test_console_transport_prints_to_its_stream(sender: str, label: str) -> None:
    stream = io.StringIO()
    console = ConsoleTransport(stream)
    message = sms(sender=sender)

    result = console.send(message)

    assert re.fullmatch(r"CO[0-9a-f]{32}", result.sid)
    assert result.status == "sent"
    assert console.sent == [(message, result)]
    printed = stream.getvalue()
    assert f"to: {PATIENT}\n" in printed
    assert f"{label}: {sender}\n" in printed
    assert f"\n{BODY}\n" in printed
    assert result.sid in printed


def test_console_transport_uses_stdout_at_send_time(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    console = ConsoleTransport()
    first = console.send(sms())
    second = console.send(sms(status_callback=None))

    out = capsys.readouterr().out
    assert out.count(BODY) == 2
    assert first.sid in out and second.sid in out and first.sid != second.sid
    assert caplog.records == []  # never to logs
    assert [r for _, r in console.sent] == [first, second]


@pytest.mark.parametrize(
    ("account_sid", "expected", "name"),
    [
        (ACCOUNT_SID, TwilioTransport, "twilio"),
        (None, ConsoleTransport, "console"),
        ("", ConsoleTransport, "console"),
    ],
)
def test_transport_for(account_sid: str | None, expected: type, name: str) -> None:
    chosen: Transport = transport_for(
        account_sid=account_sid, auth_token=AUTH_TOKEN, api_base_url="http://127.0.0.1:9"
    )
    assert type(chosen) is expected
    assert chosen.name == name
    if isinstance(chosen, TwilioTransport):
        assert chosen.api_base_url == "http://127.0.0.1:9"
        assert chosen.timeout == 10.0
        chosen.close()


def test_transport_without_base_url_targets_twilio() -> None:
    with TwilioTransport(ACCOUNT_SID, AUTH_TOKEN) as transport:  # built, never used
        assert transport.api_base_url == "https://api.twilio.com"
        assert transport._http.rebase("https://api.twilio.com/2010-04-01/x.json") == (
            "https://api.twilio.com/2010-04-01/x.json"
        )


def test_base_url_keeps_the_path_and_adds_a_prefix() -> None:
    with TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url="http://mock:4010/twilio/") as t:
        url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=2"
        assert t._http.rebase(url) == (
            f"http://mock:4010/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=2"
        )


def test_find_matches_body_number_and_time(server: TwilioServer, transport: TwilioTransport) -> None:  # noqa: E501
    def text(body: str, to: str = PATIENT) -> OutboundSms:
        return OutboundSms(to=to, sender=NUMBER, body=body)

    before = datetime.now(UTC) - timedelta(minutes=5)
    first = transport.send(text("Reminder one"))
    transport.send(text("Reminder two"))
    transport.send(text("Reminder one", to="+13055550199"))

    assert transport.find(PATIENT, "Reminder one", before).sid == first.sid
    assert transport.find(PATIENT, "Reminder three", before) is None
    assert transport.find("+13055550100", "Reminder one", before) is None
    # a message created well before the lost send is not it
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert transport.find(PATIENT, "Reminder one", later) is None
    listed = [r for r in server.requests if r.method == "GET"]
    assert all("To=" in r.path for r in listed)


def test_console_transport_cannot_look_up() -> None:
    console = ConsoleTransport(io.StringIO())
    with pytest.raises(LookupUnsupported):
        console.find(PATIENT, "x", datetime.now(UTC))
    with pytest.raises(LookupUnsupported):
        console.fetch("CO00")
