"""Dune's per-plan rate limits: requests per minute, counted per API key and endpoint class.

Dune documents two budgets per plan (docs.dune.com, "Rate Limits"): *low-limit* endpoints
(write-heavy: executing, creating, refreshing, cancelling) and *high-limit* endpoints
(read-heavy: status, results, reads). They are separate: on the free plan a client may send
15 low-limit and 40 high-limit requests in the same minute. A request past its budget gets
``429`` and starts nothing; no rate-limit headers are documented, so by default none is sent.

The budget is a sliding window: a request is admitted when fewer than ``limit`` requests of
its key and class were admitted in the last ``window_seconds``. Refused requests do not use
the budget (a client that keeps knocking is not locked out for longer). Everything is kept per
``(key, class)`` so that several keys, or a later per-key plan, need no change here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

LOW = "low"
HIGH = "high"


@dataclass(frozen=True)
class RatePlan:
    """Requests a key may send per window to each endpoint class.

    :param retry_after: also send ``Retry-After`` (seconds until a request would be admitted)
        with a 429; Dune documents no such header, so it is off by default.
    """

    name: str
    low_limit: int
    high_limit: int
    window_seconds: float = 60.0
    retry_after: bool = False

    def __post_init__(self) -> None:
        if self.low_limit <= 0 or self.high_limit <= 0 or self.window_seconds <= 0:
            raise ValueError("rate plan limits and window must be positive")

    def limit(self, endpoint_class: str) -> int:
        return self.low_limit if endpoint_class == LOW else self.high_limit


# Requests per minute, low-limit / high-limit endpoints. Dune calls its top self-serve plan
# Premium; "enterprise" here is that floor (real Enterprise limits are negotiated, and higher).
PLANS = {
    "free": RatePlan("free", 15, 40),
    "plus": RatePlan("plus", 70, 200),
    "enterprise": RatePlan("enterprise", 350, 1000),
}


def resolve_plan(plan: str | RatePlan | None) -> RatePlan | None:
    """A plan by name (``free``, ``plus``, ``enterprise``), a custom :class:`RatePlan`, or none."""
    if plan is None or isinstance(plan, RatePlan):
        return plan
    try:
        return PLANS[plan]
    except KeyError:
        raise ValueError(f"unknown rate plan {plan!r}; choose one of {', '.join(PLANS)}") from None


def endpoint_class(method: str, path: str) -> str:
    """``high`` for reads, ``low`` for requests that write or start work.

    ``POST /v1/usage`` only reads, though it is a POST.
    """
    if method in ("GET", "HEAD") or path.endswith("/v1/usage"):
        return HIGH
    return LOW


class RateBudget:
    """Sliding-window counters per ``(key, endpoint class)``; safe to share between threads."""

    def __init__(self, plan: RatePlan, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self._clock = clock
        self._admitted: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, endpoint_class: str) -> float | None:
        """Count the request and return ``None``, or return the seconds until one would be admitted."""
        now = self._clock()
        horizon = now - self.plan.window_seconds
        with self._lock:
            admitted = self._admitted.setdefault((key, endpoint_class), deque())
            while admitted and admitted[0] <= horizon:
                admitted.popleft()
            if len(admitted) >= self.plan.limit(endpoint_class):
                return admitted[0] - horizon
            admitted.append(now)
            return None
