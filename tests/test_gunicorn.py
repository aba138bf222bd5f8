"""The real thing: gunicorn on loopback, a signed STOP over HTTP, the consent read back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from conftest import API_TOKEN, AUTH_TOKEN, PATIENT, SHARED, app_config, inbound_params

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn(app, database_url, tmp_path):
    """A gunicorn server for the test's database; its PUBLIC_BASE_URL is the loopback address."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **app_config(database_url, tmp_path / "instance", PUBLIC_BASE_URL=base)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--access-logfile", "-", "app:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # a guard against a hang
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not listening yet, or its workers still starting (a loaded machine)
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(process.stdout.read().decode() if process.stdout else "")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        output = process.communicate(timeout=120)[0].decode()
        assert "rhinoplasty" not in output  # no body in any log line
        assert PATIENT not in output and "%2B13055550123" not in output  # numbers masked
        if "/api/v1/contacts/" in output:  # the access log names the path, masked
            assert "/api/v1/contacts/%2B1******0123" in output or "+1******0123" in output


def post_signed(base: str, body: str) -> str:
    params = inbound_params(body, to=SHARED)
    url = base + "/webhooks/twilio/inbound"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(params).encode(), headers={"X-Twilio-Signature": signature}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("application/xml")
        return response.read().decode()


def test_signed_keywords_through_gunicorn(gunicorn):
    assert "Reply STOP to cancel" in post_signed(gunicorn, "HELP")
    assert "<Message>" not in post_signed(gunicorn, "my rhinoplasty went well, stop by soon")
    assert "unsubscribed" in post_signed(gunicorn, "Stop")
    request = urllib.request.Request(
        f"{gunicorn}/api/v1/contacts/{urllib.parse.quote(PATIENT)}?practice=shared",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        consent = json.load(response)["consent"]
    assert consent["transactional"]["status"] == "opted_out"
    assert consent["marketing"]["status"] == "opted_out"


def test_unsigned_request_through_gunicorn_is_403(gunicorn):
    request = urllib.request.Request(
        gunicorn + "/webhooks/twilio/inbound",
        data=urllib.parse.urlencode(inbound_params("STOP")).encode(),
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=60)
    assert error.value.code == 403
    error.value.close()


def test_metrics_add_up_every_worker(gunicorn, tmp_path):
    """Two workers, each counting what it answered: every scrape, whichever worker answers it,
    shows the total (prometheus-client's multiprocess mode, set by gunicorn.conf.py)."""
    for body in ("HELP", "START", "HELP", "hello", "HELP", "HELP"):
        post_signed(gunicorn, body)
    for _ in range(4):
        request = urllib.request.Request(
            gunicorn + "/metrics", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        line = 'gateway_webhook_requests_total{kind="inbound",status="200"}'
        (sample,) = [row for row in text.splitlines() if row.startswith(line)]
        assert float(sample.split()[-1]) == 6
        assert 'gateway_inbound_messages_total{duplicate="false",intent="help",practice="shared"}' \
            in text
    assert list((tmp_path / "instance" / "prometheus").glob("counter_*.db"))
