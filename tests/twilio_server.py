"""A local Twilio-compatible HTTP server for tests: the part of REST API 2010-04-01 the gateway
uses, answered as Twilio answers it.

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form-encoded) creates a message:
  HTTP Basic auth, ``To``, ``Body`` and ``From`` or ``MessagingServiceSid`` are checked; 201 with
  Twilio's message resource, or Twilio's error JSON (401 / 400 / 404).
- ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`` answers the stored message with
  its current status.
- ``GET /2010-04-01/Accounts/{AccountSid}/Messages.json`` lists messages newest first, filtered
  by ``To`` and ``From``, one page of ``PageSize`` (Twilio's list page format).
- ``throttle`` answers that share of creates 429 / 20429 at random (a rate-limit storm).
- :meth:`TwilioServer.script` queues answers for the next create calls (:class:`Reply`,
  :class:`Delay`); once the queue is empty, creates are accepted.
- :meth:`TwilioServer.send_status` posts a status callback, signed like Twilio's.

Usage::

    with TwilioServer(ACCOUNT_SID, AUTH_TOKEN) as server:
        server.script(Reply(429, code=20429, retry_after=2))
        transport = TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url=server.url)
"""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"

_MESSAGES = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)

#: Twilio's texts for the error codes the fake produces (21211 quotes the number, as Twilio does).
ERROR_MESSAGES = {
    20003: "Authentication Error - invalid username",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}
_FINAL_STATUSES = {"delivered", "undelivered", "failed", "read", "canceled"}
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Reply:
    """A scripted answer to one create call: an HTTP status with Twilio's error JSON."""

    status: int
    code: int | None = None
    message: str | None = None
    #: sent as the Retry-After header: seconds, or a string as is (e.g. an HTTP date)
    retry_after: float | str | None = None


@dataclass(frozen=True)
class Delay:
    """Wait before answering one create call, then answer ``then`` (default: accept it)."""

    seconds: float
    then: Reply | None = None


@dataclass(frozen=True)
class Hold:
    """Hold one create call until ``TwilioServer.release()``, then answer ``then`` (default:
    accept it): a request in flight for as long as the test needs, whatever the machine's speed.
    Stopping the server answers a held call 503."""

    then: Reply | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    #: time.monotonic() when the request arrived
    received: float = 0.0


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    script: deque[Reply | Delay | Hold] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: create calls waiting in a Hold now
    held: int = 0


def num_segments(body: str) -> int:
    """SMS segments of ``body``: GSM-7 160 / 153 per part, otherwise UCS-2 70 / 67."""
    if all(ch in _GSM7 or ch in _GSM7_EXTENDED for ch in body):
        units, single, multi = sum(2 if ch in _GSM7_EXTENDED else 1 for ch in body), 160, 153
    else:
        units, single, multi = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // multi)


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))  # ... +0000


class TwilioServer:
    """Twilio's Messages API on 127.0.0.1 (a free port), served from a daemon thread."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        latency: float = 0.0,
        port: int = 0,
        throttle: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.latency = latency
        self.throttle = throttle
        self._random = random.Random(seed)
        self._state = _State()
        self._stopping = threading.Event()
        self._released = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.handle_error = self._handle_error  # type: ignore[method-assign]
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> TwilioServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving, wake delayed answers and close the listening socket."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected here; the handler records nothing

    # --- test API -------------------------------------------------------------------------

    def script(self, *responses: Reply | Delay | Hold) -> None:
        """Queue answers for the next create calls, in order."""
        with self._state.lock:
            self._state.script.extend(responses)

    def release(self) -> None:
        """Let every held create call (and any later one) answer."""
        self._released.set()

    @property
    def held(self) -> int:
        """How many create calls are waiting in a Hold right now."""
        with self._state.lock:
            return self._state.held

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every accepted message, as its resource (plus ``status_callback``)."""
        with self._state.lock:
            return [dict(m) for m in self._state.messages]

    def message(self, sid: str) -> dict[str, Any]:
        with self._state.lock:
            return dict(self._find(sid))

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> dict[str, Any]:
        """Change a message's status (as Twilio's pipeline does) without a callback."""
        with self._state.lock:
            message = self._find(sid)
            message["status"] = status
            message["error_code"] = error_code
            message["date_updated"] = rfc2822(datetime.now(UTC))
            if status in ("sent", "delivered") and message["date_sent"] is None:
                message["date_sent"] = message["date_updated"]
            return dict(message)

    def send_status(self, sid: str, status: str, error_code: int | None = None) -> int | None:
        """Set the status and POST Twilio's signed status callback to the message's
        StatusCallback URL; the HTTP status answered, or None when it has no callback."""
        message = self.set_status(sid, status, error_code)
        url = message["status_callback"]
        if not url:
            return None
        params = status_callback_params(message)
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        headers = {
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        with requests.post(url, data=params, headers=headers, timeout=10) as response:
            return response.status_code

    def deliver_all(self, status: str = "delivered") -> list[int | None]:
        """``send_status`` for every message not yet in a final status."""
        with self._state.lock:
            sids = [m["sid"] for m in self._state.messages if m["status"] not in _FINAL_STATUSES]
        return [self.send_status(sid, status) for sid in sids]

    # --- request handling (handler threads) ------------------------------------------------

    def _find(self, sid: str) -> dict[str, Any]:
        for message in self._state.messages:
            if message["sid"] == sid:
                return message
        raise KeyError(sid)

    def _record(self, request: RecordedRequest) -> None:
        with self._state.lock:
            self._state.requests.append(request)

    def _authorized(self, headers: dict[str, str]) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        given = headers.get("Authorization", "")
        return secrets.compare_digest(given.encode(), f"Basic {expected}".encode())

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, extra headers) for one API request."""
        self._record(request)
        path = urlsplit(request.path).path
        messages, message = _MESSAGES.match(path), _MESSAGE.match(path)
        match = messages or message
        if not self._authorized(request.headers) or (
            match is not None and match["account"] != self.account_sid
        ):
            return (
                *_error(401, 20003, detail="Your AccountSid or AuthToken was incorrect."),
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if request.method == "POST" and messages:
            return self._create(request.form)
        if request.method == "GET" and messages:
            return self._list(request.path)
        if request.method == "GET" and message:
            with self._state.lock:
                try:
                    return 200, _public(self._find(message["sid"])), {}
                except KeyError:
                    pass
        return (*_error(404, 20404, path=path), {})

    def _list(self, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        query = dict(parse_qsl(urlsplit(path).query))
        size = max(1, min(int(query.get("PageSize", 50)), 1000))
        with self._state.lock:
            found = [
                _public(m)
                for m in reversed(self._state.messages)
                if query.get("To", m["to"]) == m["to"] and query.get("From", m["from"]) == m["from"]
            ][:size]
        uri = urlsplit(path).path
        page = {
            "messages": found,
            "end": max(len(found) - 1, 0),
            "first_page_uri": f"{uri}?PageSize={size}&Page=0",
            "next_page_uri": None,
            "page": 0,
            "page_size": size,
            "previous_page_uri": None,
            "start": 0,
            "uri": f"{uri}?PageSize={size}&Page=0",
        }
        return 200, page, {}

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._state.lock:
            scripted = self._state.script.popleft() if self._state.script else None
            if scripted is None and self.throttle and self._random.random() < self.throttle:
                scripted = Reply(429, code=20429)
        if isinstance(scripted, Hold):
            if not self._hold():
                return (*_error(503, 20500), {})
            scripted = scripted.then
        delay = self.latency
        if isinstance(scripted, Delay):
            delay += scripted.seconds
            scripted = scripted.then
        if delay and self._stopping.wait(delay):
            return (*_error(503, 20500), {})
        if scripted is not None:
            code = scripted.code if scripted.code is not None else _default_code(scripted.status)
            status, body = _error(
                scripted.status, code, message=scripted.message, to=form.get("To", "")
            )
            headers = {}
            if isinstance(scripted.retry_after, str):
                headers["Retry-After"] = scripted.retry_after
            elif scripted.retry_after is not None:
                headers["Retry-After"] = f"{scripted.retry_after:g}"
            return status, body, headers
        if not form.get("To"):
            return (*_error(400, 21604), {})
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return (*_error(400, 21603), {})
        if not form.get("Body"):
            return (*_error(400, 21602), {})
        resource = self._new_message(form)
        return 201, resource, {}

    def _hold(self) -> bool:
        """Wait for ``release()``; False when the server stops first."""
        with self._state.lock:
            self._state.held += 1
        try:
            while not self._released.wait(0.05):
                if self._stopping.is_set():
                    return False
            return not self._stopping.is_set()
        finally:
            with self._state.lock:
                self._state.held -= 1

    def _new_message(self, form: dict[str, str]) -> dict[str, Any]:
        sid = "SM" + secrets.token_hex(16)
        now = rfc2822(datetime.now(UTC))
        service = form.get("MessagingServiceSid")
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": form["Body"],
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),  # null until the service's sender pool picks one
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(num_segments(form["Body"])),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": form["To"],
            "uri": uri,
        }
        with self._state.lock:
            self._state.messages.append({**resource, "status_callback": form.get("StatusCallback")})
        return resource


def _public(message: dict[str, Any]) -> dict[str, Any]:
    """The message resource as Twilio's API shows it (without the fake's own fields)."""
    return {k: v for k, v in message.items() if k != "status_callback"}


def status_callback_params(message: dict[str, Any]) -> dict[str, str]:
    """The form Twilio posts to a message's StatusCallback URL."""
    params = {
        "MessageSid": message["sid"],
        "MessageStatus": message["status"],
        "SmsSid": message["sid"],
        "SmsStatus": message["status"],
        "AccountSid": message["account_sid"],
        "From": message["from"] or "",
        "To": message["to"],
        "ApiVersion": API_VERSION,
    }
    if message["error_code"] is not None:
        params["ErrorCode"] = str(message["error_code"])
    if message["messaging_service_sid"]:
        params["MessagingServiceSid"] = message["messaging_service_sid"]
    return params


def _default_code(status: int) -> int:
    return {401: 20003, 404: 20404, 429: 20429}.get(status, 20500 if status >= 500 else 21211)


def _error(status: int, code: int, message: str | None = None, **fields: str) -> tuple[int, dict]:
    text = message or ERROR_MESSAGES.get(code, "Error").format_map(_Default(fields))
    body: dict[str, Any] = {
        "code": code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    if "detail" in fields:
        body["detail"] = fields["detail"]
    return status, body


class _Default(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections of concurrent senders


def _handler_for(server: TwilioServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "Twilio.Fake/1.0"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                form=dict(parse_qsl(raw, keep_blank_values=True)),
                headers=dict(self.headers.items()),
                received=time.monotonic(),
            )
            status, body, headers = server.handle(request)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve  # noqa: N815 - the names http.server dispatches to

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: test output should not carry request lines

    return Handler


def main() -> None:
    """Run the server by hand, e.g. to watch a running gateway deliver through the twilio SDK:

        python tests/twilio_server.py --port 4011 --account-sid AC... --auth-token ...

    Every accepted message gets "sent" and then "delivered" callbacks after --deliver-after s.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=4011)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--deliver-after", type=float, default=1.0,
                        help="seconds before the status callbacks; 0: none are sent")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds before answering each create")
    parser.add_argument("--throttle", type=float, default=0.0,
                        help="share of creates answered 429 / 20429")
    args = parser.parse_args()
    with TwilioServer(
        args.account_sid, args.auth_token, port=args.port, latency=args.latency,
        throttle=args.throttle,
    ) as server:
        print(f"Twilio-compatible server on {server.url}", flush=True)
        seen: set[str] = set()
        while True:
            time.sleep(args.deliver_after or 3600)
            if not args.deliver_after:
                continue
            for message in server.messages:
                if message["sid"] in seen:
                    continue
                seen.add(message["sid"])
                for status in ("sent", "delivered"):
                    answer = server.send_status(message["sid"], status)
                    print(f"{message['sid']} {status}: callback answered {answer}", flush=True)


if __name__ == "__main__":
    main()
