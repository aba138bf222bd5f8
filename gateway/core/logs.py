"""Logging without personal data: phone numbers are masked in every log line we emit, including
the access logs of the web servers, whose request paths carry numbers
(``/api/v1/contacts/+13055550123``). Message bodies are never logged in the first place."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

from gunicorn.glogging import Logger as GunicornBaseLogger

#: a phone number in a text, read after percent-decoding: 10 to 15 digits in runs separated by
#: at most three spaces (any Unicode space, e.g. a non-breaking one), brackets, dots, dashes,
#: slashes or plus signs (``+`` is a space in a query string); not after a letter or digit (a
#: Message SID's hex digits stay as they are), but whatever follows (``13055550177x``)
_NUMBER = re.compile(
    r"(?<![^\W_])(?P<plus>\+)?\(?(?:\d[\s().\-/+]{0,3}){9,14}\d(?!\d)"
)
#: a percent-escape (URL encoding): the text is decoded before it is searched
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _decoded(text: str) -> str:
    """``text`` percent-decoded, as often as it was encoded (at most three times)."""
    for _ in range(3):
        if not _ESCAPE.search(text):
            break
        text = unquote(text, errors="replace")
    return text


def mask_numbers(text: str) -> str:
    """``+13055550123`` -> ``+1******0123``, ``(305) 555-0123`` -> ``******0123``.

    Numbers are found by their digits, whatever the format, after percent-decoding (``%2B``,
    ``%28``/``%29``, ``%C2%A0``...): a line with a number in it is logged decoded, masked.
    """

    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        if match.group("plus"):
            return f"+{digits[0]}{'*' * (len(digits) - 5)}{digits[-4:]}"
        return f"{'*' * (len(digits) - 4)}{digits[-4:]}"

    decoded = _decoded(text)
    masked, count = _NUMBER.subn(mask, decoded)
    return masked if count else text


def _masked(record: logging.LogRecord) -> logging.LogRecord:
    message = record.getMessage()
    masked = mask_numbers(message)
    if masked != message:
        record.msg, record.args = masked, None
    return record


def install() -> None:
    """Mask numbers in every log record of the process, whichever logger made it.

    Done where records are made (``logging.setLogRecordFactory``), not by a filter on the
    ``gateway`` logger: a logger's filters do not see the records of its children
    (``gateway.services.delivery``) nor of other libraries, and a handler added later would miss
    them.
    Records below a logger's level are never made, so they cost nothing. Idempotent.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_numbers", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _masked(previous(*args, **kwargs))

    factory.masks_numbers = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class GunicornLogger(GunicornBaseLogger):
    """gunicorn's logger with numbers masked in access log lines (``gunicorn.conf.py``)."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        values = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "f"):
            if isinstance(values.get(key), str):
                values[key] = mask_numbers(values[key])
        return values
