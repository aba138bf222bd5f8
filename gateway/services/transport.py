"""Senders of outbound SMS behind one interface: Twilio (the real SDK) and the console.

A pure I/O boundary: this module knows nothing of the database or Flask.  A sender takes an
:class:`OutboundSms` and answers a :class:`SendResult` or raises a :class:`SendError`:

- :class:`RetryableSendError`: HTTP 429 or Twilio error 20429 (too many requests), any 5xx,
  timeouts and connection errors; ``retry_after`` carries the server's ``Retry-After`` (seconds)
  when it sent one.  A read timeout or a connection dropped after the request went out leaves
  the outcome unknown: Twilio may have accepted the message.
- :class:`PermanentSendError`: any other 4xx, e.g. 21610 (the recipient replied STOP),
  21211 (invalid ``To``), 21614 (``To`` is not a mobile number).
- :class:`UnknownOutcomeError`: the request may have reached Twilio but no answer came back (a
  read timeout, a connection dropped after the request went out). Twilio may have accepted the
  message: it must be looked up (:meth:`TwilioTransport.find`) before it is sent again.

Error messages carry the HTTP status and Twilio's error code, never the message body nor the
phone number (Twilio's own error text often quotes the number, so it is not copied, and the
SDK's exception is not chained).

Base URL override: the SDK builds absolute URLs on ``https://api.twilio.com`` and hands them to
its HTTP client; :class:`TwilioTransport` gives it a :class:`TwilioHttpClient` subclass that
swaps the scheme and host (and prefixes the path of ``api_base_url``, if it has one) just before
the request, so every resource goes to the Twilio-compatible server (tests, Prism, mocks).
"""

from __future__ import annotations

import math
import secrets
import sys
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from gateway.core.errors import GatewayError
from gateway.core.phone import mask

__all__ = [
    "ConsoleTransport",
    "LookupUnsupported",
    "OutboundSms",
    "PermanentSendError",
    "RetryableSendError",
    "SendError",
    "SendResult",
    "Transport",
    "TwilioTransport",
    "UnknownOutcomeError",
    "transport_for",
]

TWILIO_API_BASE_URL = "https://api.twilio.com"
#: HTTP connections kept alive to Twilio, at least (requests' own default)
DEFAULT_CONNECTIONS = 10

#: Twilio error code: too many requests (concurrency or rate limit).
TOO_MANY_REQUESTS = 20429

#: Twilio error codes the gateway meets on send, for readable error messages.
_DESCRIPTIONS = {
    20003: "authentication failed",
    20404: "resource not found",
    20429: "too many requests",
    21211: "invalid 'To' number",
    21408: "no permission to send to that region",
    21610: "the recipient has opted out (replied STOP)",
    21612: "'To' cannot be reached from this sender",
    21614: "'To' is not a mobile number",
}


@dataclass(frozen=True)
class OutboundSms:
    to: str  # E.164
    sender: str  # E.164 number, or a Messaging Service SID "MG..."
    body: str
    status_callback: str | None = None

    @property
    def uses_messaging_service(self) -> bool:
        return self.sender.startswith("MG")

    def __repr__(self) -> str:  # reprs end up in logs: no body, no full number
        return (
            f"OutboundSms(to={mask(self.to)!r}, sender={self.sender!r}, "
            f"body=<{len(self.body)} chars>, status_callback={self.status_callback!r})"
        )


@dataclass(frozen=True)
class SendResult:
    sid: str  # Twilio's Message SID ("SM..."; the console's are "CO" + 32 hex)
    status: str  # Twilio's status as returned: "queued", "accepted", ...; console: "sent"
    error_code: int | None = None  # Twilio's error code, on a looked-up failed message


class SendError(GatewayError):
    """Twilio did not accept the message."""

    retryable: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.retry_after = retry_after


class RetryableSendError(SendError):
    """Twilio could not take the message now; try again later."""

    retryable = True


class PermanentSendError(SendError):
    """Twilio refused the message; sending it again will not help."""

    retryable = False


class UnknownOutcomeError(SendError):
    """The request may have reached Twilio, but no answer came: look it up before resending."""

    retryable = False


class LookupUnsupported(GatewayError):
    """This transport cannot look messages up (the console transport keeps nothing)."""


class Transport(Protocol):
    name: str

    def send(self, sms: OutboundSms) -> SendResult: ...

    def fetch(self, sid: str) -> SendResult: ...

    def find(
        self, to: str, body: str, since: datetime, exclude: Collection[str] = ()
    ) -> SendResult | None: ...


class _HttpClient(TwilioHttpClient):
    """The SDK's HTTP client with a fixed timeout, an optional base URL, and the last response
    kept per thread (the SDK's own ``_test_only_last_response`` is shared between threads)."""

    def __init__(
        self, *, timeout: float, api_base_url: str | None, connections: int = DEFAULT_CONNECTIONS
    ) -> None:
        super().__init__(timeout=timeout)
        self._base = urlsplit(api_base_url.rstrip("/")) if api_base_url else None
        self._local = threading.local()
        # as many kept-alive connections as requests in flight: a request beyond the pool's
        # size (requests keeps 10) opens a connection of its own (TLS with Twilio) and drops it
        self.connections = connections
        adapter = HTTPAdapter(pool_maxsize=connections)
        assert self.session is not None
        for prefix in ("https://", "http://"):
            self.session.mount(prefix, adapter)

    @property
    def last_response(self) -> Response | None:
        """The response to this thread's last request (None if it raised before one came)."""
        return getattr(self._local, "response", None)

    def rebase(self, url: str) -> str:
        if self._base is None:
            return url
        parts = urlsplit(url)
        base = self._base
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, ""))

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self._local.response = None
        response = super().request(
            method,
            self.rebase(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        self._local.response = response
        return response


class TwilioTransport:
    """Sends through Twilio's Messages API with the real ``twilio`` SDK.

    One SDK client (and so one ``requests.Session`` and its connection pool) is built here and
    reused.  ``send`` and ``fetch`` may be called from several threads at once: requests does not
    promise that a Session is thread-safe, but all it shares here is urllib3's connection pools
    (thread-safe) and the cookie jar (locked); the response whose ``Retry-After`` is read is kept
    per thread.  Do not share an instance across ``fork``: build one per process.  ``close()``
    (or ``with``) releases the pooled connections.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base_url: str | None = None,
        timeout: float = 10.0,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.account_sid = account_sid
        self.api_base_url = api_base_url.rstrip("/") if api_base_url else TWILIO_API_BASE_URL
        self.timeout = timeout
        self.connections = connections
        self._http = _HttpClient(
            timeout=timeout, api_base_url=api_base_url, connections=connections
        )
        self._client = Client(account_sid, auth_token, http_client=self._http)

    def close(self) -> None:
        """Close the pooled HTTP connections (the transport can still send; it reconnects)."""
        if self._http.session is not None:
            self._http.session.close()

    def __enter__(self) -> TwilioTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TwilioTransport(account_sid={self.account_sid!r}, api={self.api_base_url!r})"

    def send(self, sms: OutboundSms) -> SendResult:
        """Create the message at Twilio; raises RetryableSendError or PermanentSendError."""
        kwargs: dict[str, Any] = {"to": sms.to, "body": sms.body}
        if sms.uses_messaging_service:
            kwargs["messaging_service_sid"] = sms.sender
        else:
            kwargs["from_"] = sms.sender
        if sms.status_callback is not None:
            kwargs["status_callback"] = sms.status_callback
        try:
            message = self._client.messages.create(**kwargs)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._twilio_error("send", exc) from None
        except requests.RequestException as exc:
            raise _network_error("send", exc) from None
        return SendResult(sid=str(message.sid), status=str(message.status))

    def find(
        self, to: str, body: str, since: datetime, exclude: Collection[str] = ()
    ) -> SendResult | None:
        """The message with this ``body`` sent to ``to`` at or after ``since``, if Twilio has one.

        For a send whose outcome is unknown (the process died, or no answer came): Twilio lists
        the messages to a number newest first; the newest page is enough for one send's minutes.
        Messages whose SID is in ``exclude`` (already recorded for other sends: the same text
        may well have gone to the same number before) are passed over; of the rest, the one
        created closest to ``since`` wins. Raises SendError when Twilio cannot be asked.
        """
        earliest = since - _CLOCK_SKEW
        try:
            listed = self._client.messages.list(to=to, page_size=_FIND_PAGE, limit=_FIND_PAGE)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._twilio_error("list", exc) from None
        except requests.RequestException as exc:
            raise _network_error("list", exc, may_have_arrived=False) from None
        candidates = [
            m for m in listed
            if m.body == body and m.sid not in exclude
            and (m.date_created is None or m.date_created >= earliest)
        ]  # fmt: skip
        if not candidates:
            return None

        def distance(message: Any) -> float:
            created = message.date_created
            return abs((created - since).total_seconds()) if created else float("inf")

        return _result(min(candidates, key=distance))

    def fetch(self, sid: str) -> SendResult:
        """The message's current status at Twilio (for reconciliation); raises SendError."""
        try:
            message = self._client.messages(sid).fetch()
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._twilio_error(f"fetch {sid}", exc) from None
        except requests.RequestException as exc:
            raise _network_error(f"fetch {sid}", exc, may_have_arrived=False) from None
        return _result(message)

    def _twilio_error(
        self, action: str, exc: TwilioRestException | TwilioServiceException
    ) -> SendError:
        status = int(exc.status)
        code = _twilio_code(exc.code, status)
        retryable = status == 429 or code == TOO_MANY_REQUESTS or status >= 500
        response = self._http.last_response
        retry_after = _retry_after(response.headers if response is not None else None)
        described = f"error {code}" if code is not None else "no error code"
        if code in _DESCRIPTIONS:
            described += f": {_DESCRIPTIONS[code]}"
        message = f"Twilio {action}: HTTP {status}, {described}"
        if retry_after is not None:
            message += f" (retry after {retry_after:g} s)"
        cls = RetryableSendError if retryable else PermanentSendError
        return cls(message, code=code, http_status=status, retry_after=retry_after)


def _twilio_code(code: object, status: int) -> int | None:
    """Twilio's error code; the SDK puts the HTTP status there when the body had none."""
    try:
        value = int(code)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return None if value == status else value


def _retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = str(value).strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


#: how far Twilio's clock may be behind ours when a lost send is looked up
_CLOCK_SKEW = timedelta(minutes=2)
_FIND_PAGE = 50


def _result(message: Any) -> SendResult:
    code = message.error_code
    return SendResult(
        sid=str(message.sid),
        status=str(message.status),
        error_code=int(code) if code not in (None, "") else None,
    )


def _network_error(
    action: str, exc: requests.RequestException, *, may_have_arrived: bool = True
) -> SendError:
    """No answer from Twilio. Unless the connection was never made, a create may have arrived."""
    # Only the class name: the texts of requests' exceptions quote URLs and sometimes more.
    kind = type(exc).__name__
    if may_have_arrived and not _never_connected(exc):
        return UnknownOutcomeError(f"Twilio {action}: no answer, outcome unknown ({kind})")
    return RetryableSendError(f"Twilio {action}: no answer ({kind})")


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether the request certainly did not reach Twilio (refused, no route, TLS failed)."""
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    if isinstance(exc, requests.ReadTimeout) or not isinstance(exc, requests.ConnectionError):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError, NameResolutionError))


class ConsoleTransport:
    """Prints what would be sent (no Twilio account needed).

    Never prints to logs, only to its stream (default: ``sys.stdout`` as it is at send time).
    """

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.sent: list[tuple[OutboundSms, SendResult]] = []
        self._lock = threading.Lock()

    def send(self, sms: OutboundSms) -> SendResult:
        result = SendResult(sid="CO" + secrets.token_hex(16), status="sent")
        kind = "messaging service" if sms.uses_messaging_service else "from"
        lines = [
            f"--- SMS {result.sid} ---",
            f"to: {sms.to}",
            f"{kind}: {sms.sender}",
        ]
        if sms.status_callback:
            lines.append(f"status callback: {sms.status_callback}")
        lines += [sms.body, "---"]
        stream = self.stream if self.stream is not None else sys.stdout
        with self._lock:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
            self.sent.append((sms, result))
        return result

    def fetch(self, sid: str) -> SendResult:
        raise LookupUnsupported("the console transport cannot look messages up")

    def find(
        self, to: str, body: str, since: datetime, exclude: Collection[str] = ()
    ) -> SendResult | None:
        raise LookupUnsupported("the console transport cannot look messages up")


def transport_for(
    *,
    account_sid: str | None,
    auth_token: str,
    api_base_url: str | None,
    timeout: float = 10.0,
    connections: int = DEFAULT_CONNECTIONS,
) -> Transport:
    """TwilioTransport when account_sid is set (``connections``: the HTTP connections it keeps
    alive, one for each request it may have in flight), else ConsoleTransport."""
    if account_sid:
        return TwilioTransport(account_sid, auth_token, api_base_url=api_base_url,
                               timeout=timeout, connections=connections)  # fmt: skip
    return ConsoleTransport()
