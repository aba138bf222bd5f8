"""When to try a failed send again: exponential backoff with jitter, honouring Retry-After. Pure."""

from __future__ import annotations

import random
from datetime import timedelta

#: attempts in all (the first included) before a retryable failure becomes final
MAX_ATTEMPTS = 6
BASE_DELAY = 30.0
MAX_DELAY = 3600.0


def backoff(
    attempt: int,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
    base: float = BASE_DELAY,
    cap: float = MAX_DELAY,
) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1 for the first).

    Half-jitter: uniformly between half and all of ``min(cap, base * 2**(attempt-1))``, so that
    many messages failing together (Twilio down, a 429 storm) do not return together; never less
    than the server's Retry-After.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap, base * 2 ** min(attempt - 1, 32))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    return timedelta(seconds=max(delay, retry_after or 0.0))


def gives_up(attempts: int, max_attempts: int = MAX_ATTEMPTS) -> bool:
    """Whether ``attempts`` failed attempts exhaust the budget."""
    return attempts >= max_attempts
