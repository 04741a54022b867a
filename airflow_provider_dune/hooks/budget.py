"""One request budget per API key in each process, so many waits share Dune's rate limit fairly.

Dune limits requests per API key and per minute, separately for its *low-limit* endpoints
(those that start or stop work: execute, refresh, cancel) and its *high-limit* ones (status
and result reads): Free 15/40, Plus 70/200, Enterprise 350/1000. A triggerer holding a thousand
deferred runs that each poll every 10 s would send 6,000 reads a minute; if every trigger found
the limit by meeting 429s and backing off on its own, the key would be throttled for everyone
using it, and which run hears about its end first would be luck.

Instead, every request a hook sends in this process first takes a slot from its key's
:class:`RequestBudget`:

* **Even spacing, first come first served.** Slots are handed out at the budget's rate, in the
  order they are asked for (a generic cell rate algorithm: one "next free slot" time per
  class). With N runs polling, each run's interval stretches to about N / rate, evenly: none
  starves, and none polls faster than its own ``poll_interval`` (the waiting loop still sleeps
  that long between reads).
* **Two classes.** Low-limit requests have a budget of their own, so a submission never waits
  behind polls; a cancel is *urgent*: it never waits at all (it still counts).
* **Adaptive.** A 429 halves the rate (multiplicative decrease, to no less than a twentieth of
  the ceiling); each answered request raises it by a small step back towards the ceiling
  (additive increase). With no ceiling configured the budget starts unlimited and only adapts
  once Dune answers 429: from half the rate that met the limit, never below Dune's Free plan.

The ceiling comes from the connection: ``plan`` (``free``, ``plus``, ``enterprise``) or
``rate_limit_per_minute`` (high-limit endpoints) and ``low_rate_limit_per_minute``, times
``rate_limit_share`` (0.8 by default: a fifth of the key's budget is left to the team's other
clients, dashboards and scripts), divided by ``rate_limit_processes`` (1 by default; set it to
the number of triggerers that share the key). Budgets live in this process only: several
processes split the key's budget by that division, and by adapting to the 429s they still meet.
"""

from __future__ import annotations

import enum
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_dune.exceptions import DuneConfigurationError

# Dune's published limits, requests per minute: (low-limit endpoints, high-limit endpoints).
PLANS: Mapping[str, tuple[float, float]] = {
    "free": (15.0, 40.0),
    "plus": (70.0, 200.0),
    "enterprise": (350.0, 1000.0),
}
DEFAULT_SHARE = 0.8
# A 429 never takes the rate below this fraction of its ceiling.
_MIN_FACTOR = 0.05
# With no ceiling configured, what a 429 teaches never goes below Dune's smallest plan: every
# key has at least that much.
_LEARNED_FLOOR = {"low": PLANS["free"][0], "high": PLANS["free"][1]}
# How many requests may go at once before spacing applies (per class).
_BURST = 2


class RequestClass(str, enum.Enum):
    """Dune's two rate-limit classes."""

    LOW = "low"  # starts or stops work: execute, refresh, cancel, upsert
    HIGH = "high"  # reads: status, results, lists


@dataclass(frozen=True)
class BudgetSettings:
    """A key's budget in this process, in requests per minute per class (``None``: no ceiling)."""

    low_per_minute: float | None = None
    high_per_minute: float | None = None
    describe: str = "no configured limit"

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any], conn_id: str) -> BudgetSettings:
        """Read ``plan``, ``rate_limit_per_minute``, ``low_rate_limit_per_minute``,
        ``rate_limit_share`` and ``rate_limit_processes`` from a connection's extras."""

        def number(name: str, default: float | None) -> float | None:
            value = extras.get(name)
            if value is None or value == "":
                return default
            try:
                parsed = float(value)
            except (TypeError, ValueError):
                parsed = float("nan")
            if not parsed > 0 or parsed == float("inf"):
                raise DuneConfigurationError(
                    f"The connection {conn_id!r} sets {name}={value!r}; it must be a positive number."
                )
            return parsed

        plan = str(extras.get("plan") or "").strip().lower()
        if plan and plan not in PLANS:
            raise DuneConfigurationError(
                f"The connection {conn_id!r} sets plan={extras.get('plan')!r}; use one of "
                f"{', '.join(PLANS)} (Dune's published rate limits), or rate_limit_per_minute."
            )
        low, high = PLANS.get(plan, (None, None))
        high = number("rate_limit_per_minute", high)
        low = number("low_rate_limit_per_minute", low)
        share = number("rate_limit_share", DEFAULT_SHARE)
        processes = number("rate_limit_processes", 1.0)
        assert share is not None and processes is not None
        if share > 1:
            raise DuneConfigurationError(
                f"The connection {conn_id!r} sets rate_limit_share={share}; it is a fraction of the "
                "key's budget, at most 1."
            )
        scale = share / processes
        if low is None and high is None:
            return cls()
        source = f"plan {plan}" if plan else "the connection's rate limits"
        return cls(
            low_per_minute=low * scale if low is not None else None,
            high_per_minute=high * scale if high is not None else None,
            describe=f"{source} x {share:g}" + (f" / {processes:g} processes" if processes != 1 else ""),
        )


class _Lane:
    """One class's slots: a generic cell rate algorithm with an adaptive rate."""

    def __init__(self, per_minute: float | None, floor: float, clock: Callable[[], float]) -> None:
        self.ceiling = per_minute
        self.floor = floor
        self.clock = clock
        self.factor = 1.0
        # Without a ceiling the lane is open until a 429 teaches it a rate.
        self.learned: float | None = None
        self.next_free = 0.0
        self.calm_after = 0.0
        self.sent: deque[float] = deque()

    @property
    def base(self) -> float | None:
        return self.ceiling if self.ceiling is not None else self.learned

    @property
    def per_minute(self) -> float | None:
        if self.ceiling is not None:
            return self.ceiling * self.factor
        return None if self.learned is None else max(self.floor, self.learned * self.factor)

    def reserve(self, urgent: bool) -> float:
        """Take the next slot; return how long to wait for it (0: go now)."""
        now = self.clock()
        self.sent.append(now)
        while self.sent[0] < now - 60.0:
            self.sent.popleft()
        rate = self.per_minute
        if rate is None:
            return 0.0
        spacing = 60.0 / rate
        slot = max(now, self.next_free)
        self.next_free = slot + spacing
        if urgent:
            return 0.0
        # Up to _BURST requests may go together; beyond, they are spaced.
        wait = slot - now - (_BURST - 1) * spacing
        return wait if wait > 1e-6 else 0.0

    def throttled(self) -> None:
        now = self.clock()
        if now < self.calm_after:
            # Requests already in flight when the rate dropped meet the same limit: one
            # congestion event, one decrease.
            return
        if self.base is None:
            # No ceiling known: half the rate that met the limit (what went out in the last minute).
            self.learned = max(self.floor, len(self.sent) / 2)
        else:
            self.factor = max(_MIN_FACTOR, self.factor / 2)
        rate = self.per_minute or 60.0
        self.calm_after = now + max(1.0, 2 * 60.0 / rate)

    def answered(self) -> None:
        base = self.base
        if base is None:
            return
        if self.factor < 1.0:
            # One request a minute more per `base` answers: about a minute per halving to get
            # back to the ceiling, so a 429 storm is not re-created at once.
            self.factor = min(1.0, self.factor + 1.0 / base)
        elif self.ceiling is None:
            assert self.learned is not None
            # No ceiling known: keep probing upwards, slowly, until Dune says 429 again.
            self.learned += 1.0 / self.learned


class RequestBudget:
    """The slots of one API key in this process; thread-safe, for worker threads and event loops."""

    def __init__(self, settings: BudgetSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._lanes = {
            RequestClass.LOW: _Lane(settings.low_per_minute, _LEARNED_FLOOR["low"], clock),
            RequestClass.HIGH: _Lane(settings.high_per_minute, _LEARNED_FLOOR["high"], clock),
        }

    def reserve(self, request_class: RequestClass, *, urgent: bool = False) -> float:
        """Seconds to wait before sending one request of ``request_class`` (the slot is taken)."""
        with self._lock:
            return self._lanes[request_class].reserve(urgent)

    def throttled(self, request_class: RequestClass) -> None:
        """Dune answered 429: slow the class down."""
        with self._lock:
            self._lanes[request_class].throttled()

    def answered(self, request_class: RequestClass) -> None:
        """Dune answered without throttling: let the class recover towards its ceiling."""
        with self._lock:
            self._lanes[request_class].answered()

    def per_minute(self, request_class: RequestClass) -> float | None:
        with self._lock:
            return self._lanes[request_class].per_minute


_budgets: dict[tuple[str, str], RequestBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(base_url: str, key: str, settings: BudgetSettings) -> RequestBudget:
    """The process-wide budget of one API key at one base URL, created on first use.

    Keyed by a digest of the key, never the key itself. The first connection to name a key sets
    its budget; a later one with other settings gets the same budget (one key, one limit).
    """
    ident = (base_url, hashlib.sha256(key.encode()).hexdigest())
    with _budgets_lock:
        budget = _budgets.get(ident)
        if budget is None:
            budget = _budgets[ident] = RequestBudget(settings)
        return budget


def forget_budgets() -> None:
    """Drop every budget (tests and benchmarks start each scenario afresh)."""
    with _budgets_lock:
        _budgets.clear()
