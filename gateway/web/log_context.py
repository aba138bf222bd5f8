"""What each log line knows besides its message: the request id and the practice, and the JSON
form of a line (``GATEWAY_LOG_FORMAT=json``, python-json-logger).

A request's id is its ``X-Request-ID`` header when a proxy set a sane one, else a new one; it is
sent back in the response's ``X-Request-ID``. The practice is set where the gateway learns it (the
sender a patient texted, the API's ``practice``, the message being dispatched). Both live in
context variables (``gateway.core.log_fields``), so the scheduler's threads have their own.

Numbers are masked in JSON lines exactly as in text lines (``gateway.core.logs.mask_numbers``).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Flask, Response, request
from pythonjsonlogger.json import JsonFormatter

from gateway.core.log_fields import practice, request_id
from gateway.core.logs import mask_numbers

__all__ = ["ContextFilter", "JsonLineFormatter", "formatter", "init_app", "practice",
           "request_id", "set_practice"]  # fmt: skip

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def set_practice(slug: str | None) -> None:
    practice.set(slug)


def init_app(app: Flask) -> None:
    """A request id for every request (and its response); the practice forgotten after it."""

    @app.before_request
    def _begin() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        request_id.set(supplied if _SANE_ID.match(supplied) else uuid.uuid4().hex)
        practice.set(None)

    @app.after_request
    def _id_header(response: Response) -> Response:
        if request_id.get():
            response.headers["X-Request-ID"] = request_id.get()
        return response

    @app.teardown_request
    def _end(_exc: BaseException | None) -> None:
        request_id.set(None)
        practice.set(None)


class ContextFilter(logging.Filter):
    """Puts ``request_id`` and ``practice`` on every record (None outside a request/message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "practice"):
            record.practice = practice.get()
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message, request_id,
    practice, and the exception's traceback when there is one; numbers masked everywhere."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s %(request_id)s %(practice)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            json_ensure_ascii=False,
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:  # fmt: skip
        super().add_fields(log_data, record, message_dict)
        time = log_data.pop("time")
        log_data.update({"time": time.isoformat(timespec="milliseconds").replace("+00:00", "Z")})
        # time first, for people reading the lines
        ordered = {"time": log_data.pop("time"), **log_data}
        log_data.clear()
        log_data.update(ordered)
        for key, value in log_data.items():
            if isinstance(value, str):
                log_data[key] = mask_numbers(value)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of the gateway's log lines for ``GATEWAY_LOG_FORMAT``."""
    if log_format == "json":
        return JsonLineFormatter()
    return logging.Formatter(TEXT_FORMAT)
