"""``GATEWAY_LOG_FORMAT=json``: one JSON object per line (time, level, logger, message, request
id, practice), numbers masked as in text lines; text stays the default."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import app_config
from gateway.web import log_context

ROOT = Path(__file__).resolve().parent.parent


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    item = logging.LogRecord("gateway.test", logging.WARNING, __file__, 1, message, args, None)
    item.__dict__.update(extra)
    return item


@pytest.mark.parametrize(
    ("message", "args", "shown"),
    [
        ("plain", (), "plain"),
        ("to %s", ("+13055550123",), "to +1******0123"),
        ("from (305) 555-0123 again", (), "from ******0123 again"),
        ("path /api/v1/contacts/%s", ("%2B13055550123",), "path /api/v1/contacts/+1******0123"),
        ("sid SM0123456789abcdef0123456789abcdef", (), "sid SM0123456789abcdef0123456789abcdef"),
    ],
)
def test_a_json_line_has_its_fields_and_masks_numbers(message, args, shown):
    line = log_context.JsonLineFormatter().format(
        record(message, *args, request_id="req-1", practice="alluring")
    )
    assert "\n" not in line
    data = json.loads(line)
    assert list(data) == ["time", "level", "logger", "message", "request_id", "practice"]
    assert data["message"] == shown
    assert (data["level"], data["logger"]) == ("WARNING", "gateway.test")
    assert (data["request_id"], data["practice"]) == ("req-1", "alluring")
    assert data["time"].endswith("Z")


@given(st.text(max_size=200))
def test_any_message_is_one_line_of_json(message):
    line = log_context.JsonLineFormatter().format(record("%s", message))
    assert "\n" not in line
    assert json.loads(line)["message"] == log_context.mask_numbers(message)


def test_the_traceback_is_in_the_object_and_masked():
    try:
        raise ValueError("bad number +13055550123")
    except ValueError:
        import sys as _sys

        item = record("failed")
        item.exc_info = _sys.exc_info()
    data = json.loads(log_context.JsonLineFormatter().format(item))
    assert "ValueError" in data["exc_info"] and "+1******0123" in data["exc_info"]
    assert "13055550123" not in json.dumps(data)


SCRIPT = """
import os
from twilio.request_validator import RequestValidator
from gateway import create_app
app = create_app()
client = app.test_client()
# a From that is no phone number: logged (masked) with the practice it was sent to
params = {"MessageSid": "SM" + "a" * 32, "From": "+1305555012", "To": "+17865550100",
          "Body": "hello"}
url = os.environ["PUBLIC_BASE_URL"] + "/webhooks/twilio/inbound"
signature = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"]).compute_signature(url, params)
client.post("/webhooks/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature})
client.post("/webhooks/twilio/inbound", data={"From": "+13055550123"},
            headers={"X-Request-ID": "req-from-proxy"})
"""


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_gateway_logs_json_lines_when_told(database_url, tmp_path, log_format):
    env = {**os.environ, **app_config(database_url, tmp_path / "instance"),
           "GATEWAY_LOG_FORMAT": log_format}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, lines
    assert "1305555012" not in result.stderr
    if log_format == "text":
        assert lines[0].split()[2:4] == ["WARNING", "gateway.webhooks:"]
        with pytest.raises(json.JSONDecodeError):
            json.loads(lines[0])
        return
    ignored, forged = (json.loads(line) for line in lines)
    assert ignored["practice"] == "shared" and ignored["logger"] == "gateway.webhooks"
    assert "ignored" in ignored["message"] and len(ignored["request_id"]) == 32
    assert forged["request_id"] == "req-from-proxy" and forged["practice"] is None
    assert "X-Twilio-Signature" in forged["message"]


def test_each_response_names_its_request_id(client):
    mine = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["X-Request-ID"] == "abc-123"
    fresh = client.get("/healthz", headers={"X-Request-ID": "not ok\u00e9" * 10})
    assert len(fresh.headers["X-Request-ID"]) == 32 and fresh.headers["X-Request-ID"].isalnum()
