"""What TwilioTransport sends conforms to Twilio's own OpenAPI description of API 2010-04-01.

Stoplight Prism (``tests/tools/install-prism`` puts it in ``.cache/prism``) serves the
description as a mock.  In mock mode Prism validates every request against the operation's
schema (path parameters, required form fields, patterns, formats, security) and answers a
violation with ``422`` and a problem JSON instead of the documented example; ``--errors`` also
turns violations of the response examples into errors, so the mock itself is checked too.
``test_prism_rejects_a_non_conforming_request`` shows the check can fail.

The description is ``tests/data/twilio-oai/twilio_api_v2010.json`` (Twilio's, MIT licence, see
SOURCE beside it), or the file named by ``TWILIO_OPENAPI_SPEC``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from gateway.services.transport import OutboundSms, PermanentSendError, SendError, TwilioTransport

ROOT = Path(__file__).resolve().parents[1]
INSTALL_COMMAND = "tests/tools/install-prism"
PRISM = ROOT / ".cache" / "prism" / "node_modules" / ".bin" / "prism"
DEFAULT_SPEC = Path(__file__).resolve().parent / "data" / "twilio-oai" / "twilio_api_v2010.json"
STARTUP_TIMEOUT = 60.0  # seconds; loading the 1.9 MB description takes about 2-3 s here

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fedcba9876543210fedcba9876543210"
NUMBER = "+17865550100"
SERVICE = "MG" + "0123456789abcdef" * 2
PATIENT = "+13055550123"
BODY = "Alluring Plastic Surgery: reminder for Tue 3 PM. Reply STOP to end."
CALLBACK = "https://gateway.example.test/webhooks/twilio/status"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def spec_path() -> Path:
    return Path(os.environ.get("TWILIO_OPENAPI_SPEC") or DEFAULT_SPEC)


def unavailable(reason: str) -> None:
    """Fail under CI (the check must run there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the Prism conformance test)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Prism:
    url: str
    log: Path

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def validation_log(self, offset: int) -> str:
        """Prism's log of the request made after ``offset`` (it may lag the answer a little)."""
        deadline = time.monotonic() + 60  # a guard against a hang, not a speed
        while True:
            text = self.log_since(offset)
            if "Responding with" in text or "Request terminated" in text:
                return text
            if time.monotonic() > deadline:
                return text
            time.sleep(0.05)


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    """``prism mock --errors`` on a free loopback port, stopped (process group) at the end."""
    if not PRISM.exists():
        unavailable(f"Prism is not installed: run {INSTALL_COMMAND}")
    spec = spec_path()
    if not spec.is_file():
        unavailable(f"Twilio's OpenAPI description is missing: {spec} (TWILIO_OPENAPI_SPEC)")
    port = free_port()
    log_path = tmp_path_factory.mktemp("prism") / "prism.log"
    command = [str(PRISM), "mock", "--errors", "-h", "127.0.0.1", "-p", str(port), str(spec)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=ROOT,
        )  # fmt: skip
    server = Prism(url=f"http://127.0.0.1:{port}", log=log_path)
    try:
        wait_until_listening(process, port, server)
        yield server
    finally:
        stop(process)


def wait_until_listening(process: subprocess.Popen[bytes], port: int, prism: Prism) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"Prism exited with {process.returncode}:\n{prism.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"Prism did not listen within {STARTUP_TIMEOUT:g} s:\n{prism.tail()}")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate Prism's whole process group; kill what is left of it after 5 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):  # a leader that ignored SIGTERM, or a child
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


@pytest.fixture
def transport(prism: Prism) -> Iterator[TwilioTransport]:
    with TwilioTransport(ACCOUNT_SID, AUTH_TOKEN, api_base_url=prism.url, timeout=60) as t:
        yield t


def assert_passed_validation(prism: Prism, offset: int) -> None:
    log = prism.validation_log(offset)
    assert "The request passed the validation rules" in log, log
    assert not re.search(r"\[VALIDATOR\] (?:⚠|✖)", log), log


@pytest.mark.parametrize("sender", [NUMBER, SERVICE], ids=["from-number", "messaging-service"])
def test_send_conforms_to_twilios_openapi_description(
    prism: Prism, transport: TwilioTransport, sender: str
) -> None:
    offset = prism.log_size()
    message = OutboundSms(to=PATIENT, sender=sender, body=BODY, status_callback=CALLBACK)

    try:
        result = transport.send(message)
    except SendError as exc:
        pytest.fail(f"Prism rejected the SDK's request ({exc}):\n{prism.log_since(offset)}")

    # Prism answers the documented example of the 201 response
    assert re.fullmatch(r"SM[0-9a-fA-F]{32}", result.sid)
    assert result.status in {"queued", "accepted"}
    assert_passed_validation(prism, offset)


def test_prism_rejects_a_non_conforming_request(prism: Prism) -> None:
    """The check above can fail: a request without the required ``To`` is refused."""
    offset = prism.log_size()
    with requests.post(
        prism.url + MESSAGES_PATH,
        data={"From": NUMBER, "Body": BODY},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=60,
    ) as response:
        assert response.status_code == 422
        assert response.headers["Content-Type"].startswith("application/problem+json")
        problem = response.json()

    assert problem["title"] == "Invalid request"
    assert any(
        v["location"] == ["body"] and "'To'" in v["message"] for v in problem["validation"]
    ), problem
    assert "Request did not pass the validation rules" in prism.validation_log(offset)


def test_transport_reports_a_rejected_request(prism: Prism, transport: TwilioTransport) -> None:
    """A malformed Messaging Service SID goes through the SDK and comes back as Prism's 422."""
    message = OutboundSms(to=PATIENT, sender="MGnot-a-service", body=BODY)

    with pytest.raises(PermanentSendError) as caught:
        transport.send(message)

    assert caught.value.http_status == 422
