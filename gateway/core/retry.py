"""When to try a failed send again: exponential backoff with jitter, honouring Retry-After. Pure."""

from __future__ import annotations

import random
from datetime import timedelta

#: attempts in all (the first included) before a retryable failure becomes final
MAX_ATTEMPTS = 6
#: the same when Twilio only said "too many requests" (429 / 20429): it did not take the message,
#: so waiting is always safe; with the backoff below, about a day of rate limiting
MAX_THROTTLED_ATTEMPTS = 30
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


def gives_up(attempts: int, max_attempts: int = MAX_ATTEMPTS, *, throttled: bool = False) -> bool:
    """Whether ``attempts`` failed attempts exhaust the budget (a larger one when the last
    failure was Twilio's rate limit)."""
    return attempts >= (max(max_attempts, MAX_THROTTLED_ATTEMPTS) if throttled else max_attempts)
