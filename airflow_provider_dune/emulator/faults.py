"""Fault injection: make the emulator misbehave the way a busy public API does.

Every rate is a disjoint share of the requests a rule matches (their sum must not exceed 1),
decided by one seeded draw per request, so ``FaultConfig(rate_429=0.2, seed=1)`` gives about
one 429 in five, reproducibly for a sequential client.

When a fault is applied, relative to the handler that does the work:

* ``429``, ``429_retry_after`` and ``500``/``502``/``503``/``504`` replace the handler: a POST
  that gets one of these did not start anything, so retrying it is safe.
* ``slow`` waits ``slow_seconds`` and then runs the handler normally, even if the client has
  given up meanwhile: a client timeout on a slow POST is the "may have started" case.
* ``drop`` and ``malformed`` act *after* the handler ran (the work started, the answer was lost
  or garbled): that is the ambiguous case a client must not blindly retry on a POST. Set
  ``drop_before_work=True`` to drop before the handler instead.

502 and 504 come with an HTML body, as a gateway in front of the API would send them; 500 and
503 come with the API's JSON ``{"error": ...}``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

RATE_LIMIT = "429"
RATE_LIMIT_RETRY_AFTER = "429_retry_after"
SLOW = "slow"
DROP = "drop"
MALFORMED = "malformed"
SERVER_ERRORS = ("500", "502", "503", "504")
FAULT_NAMES = (RATE_LIMIT, RATE_LIMIT_RETRY_AFTER, SLOW, DROP, MALFORMED, *SERVER_ERRORS)


@dataclass(frozen=True)
class FaultConfig:
    """One fault rule. ``methods``/``path_prefixes`` scope it; empty means every API request."""

    rate_429: float = 0.0
    rate_429_retry_after: float = 0.0
    retry_after_seconds: int = 1
    rate_5xx: float = 0.0
    statuses_5xx: tuple[int, ...] = (500, 502, 503, 504)
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    rate_drop: float = 0.0
    rate_malformed: float = 0.0
    # Deterministic faults for the first matching requests, e.g. ("429", "503"); "none" passes one.
    sequence: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    path_prefixes: tuple[str, ...] = ()
    drop_before_work: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = (
            self.rate_429,
            self.rate_429_retry_after,
            self.rate_5xx,
            self.rate_slow,
            self.rate_drop,
            self.rate_malformed,
        )
        if any(rate < 0 or rate > 1 for rate in rates):
            raise ValueError("fault rates must be between 0 and 1")
        if sum(rates) > 1 + 1e-9:
            raise ValueError(f"fault rates are disjoint shares and must sum to at most 1, got {sum(rates)}")
        unknown = [name for name in self.sequence if name not in (*FAULT_NAMES, "none")]
        if unknown:
            raise ValueError(f"unknown fault names in sequence: {unknown}; known: {FAULT_NAMES}")
        bad_statuses = [status for status in self.statuses_5xx if not 500 <= status <= 599]
        if not self.statuses_5xx or bad_statuses:
            raise ValueError("statuses_5xx must be a non-empty tuple of 5xx codes")
        # Normalise lists coming from JSON/YAML so that equality and hashing keep working.
        object.__setattr__(self, "sequence", tuple(self.sequence))
        object.__setattr__(self, "statuses_5xx", tuple(self.statuses_5xx))
        object.__setattr__(self, "methods", tuple(method.upper() for method in self.methods))
        object.__setattr__(self, "path_prefixes", tuple(self.path_prefixes))

    @property
    def active(self) -> bool:
        return bool(self.sequence) or any(
            (
                self.rate_429,
                self.rate_429_retry_after,
                self.rate_5xx,
                self.rate_slow,
                self.rate_drop,
                self.rate_malformed,
            )
        )

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        return not self.path_prefixes or any(path.startswith(prefix) for prefix in self.path_prefixes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**data)


@dataclass
class FaultDecision:
    name: str
    rule: FaultConfig

    @property
    def before_work(self) -> bool:
        if self.name == DROP:
            return self.rule.drop_before_work
        return self.name != MALFORMED

    @property
    def status(self) -> int | None:
        return int(self.name[:3]) if self.name[:3].isdigit() else None


@dataclass
class _RuleState:
    config: FaultConfig
    rng: random.Random
    sequence_position: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaultInjector:
    """Holds the active rules; they can be swapped from any thread while the server runs."""

    def __init__(
        self, rules: FaultConfig | tuple[FaultConfig, ...] | list[FaultConfig] | None = None
    ) -> None:
        self._rules: tuple[_RuleState, ...] = ()
        self.set_rules(rules)

    @property
    def rules(self) -> tuple[FaultConfig, ...]:
        return tuple(state.config for state in self._rules)

    def set_rules(self, rules: FaultConfig | tuple[FaultConfig, ...] | list[FaultConfig] | None) -> None:
        if rules is None:
            configs: tuple[FaultConfig, ...] = ()
        elif isinstance(rules, FaultConfig):
            configs = (rules,)
        else:
            configs = tuple(rules)
        # One tuple assignment, so the server thread sees either the old or the new rules.
        self._rules = tuple(_RuleState(config, random.Random(config.seed)) for config in configs)

    def decide(self, method: str, path: str) -> FaultDecision | None:
        for state in self._rules:
            if state.config.active and state.config.matches(method, path):
                return self._draw(state)
        return None

    @staticmethod
    def _draw(state: _RuleState) -> FaultDecision | None:
        config = state.config
        with state.lock:
            if state.sequence_position < len(config.sequence):
                name = config.sequence[state.sequence_position]
                state.sequence_position += 1
                return None if name == "none" else FaultDecision(name, config)
            draw = state.rng.random()
            status_pick = state.rng.choice(config.statuses_5xx)
        shares = (
            (RATE_LIMIT, config.rate_429),
            (RATE_LIMIT_RETRY_AFTER, config.rate_429_retry_after),
            (str(status_pick), config.rate_5xx),
            (SLOW, config.rate_slow),
            (DROP, config.rate_drop),
            (MALFORMED, config.rate_malformed),
        )
        upper = 0.0
        for name, share in shares:
            upper += share
            if draw < upper:
                return FaultDecision(name, config)
        return None
