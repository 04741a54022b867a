"""Service-neutral vocabulary: is a remote run still going, did it succeed, did it fail.

Every status model (Dune pipelines, Dune executions) reduces its payload to a
:class:`RunOutcome`; the operators, sensors and triggers only ever branch on that.
"""

from __future__ import annotations

import enum
import logging
import threading

log = logging.getLogger(__name__)


class RunOutcome(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self is not RunOutcome.RUNNING


class UnknownStateLog:
    """Warns once per (kind, state) about a state string we do not know.

    Dune has added states before (``QUERY_STATE_COMPLETED_PARTIAL``) and the official client
    crashed on it. We treat an unknown state as "still running" and say so once, instead of
    once per poll.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def note(self, kind: str, state: str) -> None:
        key = (kind, state)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        log.warning(
            "Unknown %s state %r from the API: treating it as still running. "
            "Please report it if it persists.",
            kind,
            state,
        )

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


unknown_states = UnknownStateLog()
