"""The fields a log line carries besides its message: the request id and the practice.

Context variables, so each request and each of the scheduler's threads has its own. They are set
where the gateway learns them (``gateway.web.log_context`` for a request, the dispatcher for the
message it is sending) and put on every record by ``gateway.web.log_context.ContextFilter``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("gateway_request_id", default=None)
practice: ContextVar[str | None] = ContextVar("gateway_practice", default=None)


@contextmanager
def practice_named(slug: str | None) -> Iterator[None]:
    """Name ``slug`` as the practice of the log lines made inside the block; the practice named
    before it is restored after."""
    token = practice.set(slug)
    try:
        yield
    finally:
        practice.reset(token)
