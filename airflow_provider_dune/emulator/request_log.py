"""What the emulator was asked, so tests can assert on the traffic a client produced."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestLogEntry:
    time: float
    method: str
    path: str
    status: int | None  # None: the connection was dropped without a response
    key_in_url: bool
    fault: str | None
    # "low" or "high": which of the plan's budgets the request counts against (Dune API only).
    endpoint_class: str | None = None
    # Refused with 429 because the key's plan budget for that class was spent.
    rate_limited: bool = False


class RequestLog:
    """Thread-safe: the server appends from its loop thread while tests read from theirs."""

    def __init__(self, max_entries: int = 100_000) -> None:
        # Bounded so that a long-running emulator under polling load does not grow without limit.
        self._entries: deque[RequestLogEntry] = deque(maxlen=max_entries)
        self._lock = threading.Lock()

    def append(self, entry: RequestLogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[RequestLogEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def filter(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
        fault: str | None = None,
        key_in_url: bool | None = None,
        endpoint_class: str | None = None,
        rate_limited: bool | None = None,
    ) -> list[RequestLogEntry]:
        wanted_method = method.upper() if method else None
        return [
            entry
            for entry in self.entries()
            if (wanted_method is None or entry.method == wanted_method)
            and (path_prefix is None or entry.path.startswith(path_prefix))
            and (status is None or entry.status == status)
            and (fault is None or entry.fault == fault)
            and (key_in_url is None or entry.key_in_url == key_in_url)
            and (endpoint_class is None or entry.endpoint_class == endpoint_class)
            and (rate_limited is None or entry.rate_limited == rate_limited)
        ]

    def count(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
        fault: str | None = None,
        key_in_url: bool | None = None,
        endpoint_class: str | None = None,
        rate_limited: bool | None = None,
    ) -> int:
        return len(self.filter(method, path_prefix, status, fault, key_in_url, endpoint_class, rate_limited))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[RequestLogEntry]:
        return iter(self.entries())
