"""When a failed HTTP call is tried again, and after how long. One policy for sync and async.

The rule that matters: a request that *starts work* on Dune (an ``execute`` POST) is only
retried when Dune certainly did not start it: a 429 (rejected before any work) or a
connection that failed before the request was sent. A 5xx, a timeout or a dropped
connection after sending may mean the query is already running; retrying then could run it
twice and pay twice, so those are raised instead. Reads (status, results) and cancels are
idempotent and are retried on 429, 5xx, timeouts and connection errors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and in total time.

    :param max_attempts: attempts in all, the first included.
    :param base_delay: first backoff in seconds; doubles each attempt (before jitter).
    :param max_delay: the longest single wait, ``Retry-After`` included.
    :param max_total_seconds: stop retrying once this much time has passed since the first attempt.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_total_seconds: float = 300.0

    def should_retry(self, *, starts_work: bool, status: int | None, request_sent: bool) -> bool:
        """Whether this outcome may be retried at all (attempts and time are checked apart).

        :param status: the HTTP status, or ``None`` when no response arrived.
        :param request_sent: for ``status=None``: whether the request may have reached the server.
        """
        if status is None:
            return not (starts_work and request_sent)
        if status == 429:
            return True
        return status in RETRYABLE_STATUS and not starts_work

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_delay))
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def has_budget(self, attempt: int, elapsed: float, next_delay: float) -> bool:
        return attempt < self.max_attempts and elapsed + next_delay <= self.max_total_seconds


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date; ``None`` when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time())
