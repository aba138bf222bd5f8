"""Logging without personal data: phone numbers are masked in every log line we emit, including
the access logs of the web servers, whose request paths carry numbers
(``/api/v1/contacts/+13055550123``). Message bodies are never logged in the first place."""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger as GunicornBaseLogger

# 10-15 digits, optionally after + or %2B, with spaces, %20, dots, dashes or brackets between
# them; not inside a longer word (a Message SID's hex digits stay as they are)
_NUMBER = re.compile(
    r"(?<![A-Za-z0-9])(?P<plus>\+|%2[bB])?\(?(?:\d(?:[\s().\-]|%20){0,3}){9,14}\d(?![A-Za-z0-9])"
)


def mask_numbers(text: str) -> str:
    """``+13055550123`` -> ``+1******0123``, ``(305) 555-0123`` -> ``******0123``; in plain,
    punctuated and URL-encoded forms."""

    def mask(match: re.Match[str]) -> str:
        body = match.group()[len(match.group("plus") or "") :].replace("%20", " ")
        digits = re.sub(r"\D", "", body)
        if match.group("plus"):
            return f"+{digits[0]}{'*' * (len(digits) - 5)}{digits[-4:]}"
        return f"{'*' * (len(digits) - 4)}{digits[-4:]}"

    return _NUMBER.sub(mask, text)


class MaskNumbers(logging.Filter):
    """A filter that rewrites a record's message with its numbers masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_numbers(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install() -> None:
    """Mask numbers in the gateway's loggers and the development server's access log."""
    for name in ("gateway", "werkzeug", "gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskNumbers) for f in logger.filters):
            logger.addFilter(MaskNumbers())


class GunicornLogger(GunicornBaseLogger):
    """gunicorn's logger with numbers masked in access log lines (``gunicorn.conf.py``)."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        values = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "f"):
            if isinstance(values.get(key), str):
                values[key] = mask_numbers(values[key])
        return values
