"""A tap on the Dune API traffic of every emulator in this process: whole exchanges for observers.

The request log keeps a line per request; an observer registered here receives each answered
``/api/`` request with its query string, body and response, so that a test session can check
them all against Dune's OpenAPI specification at the end (``tests/contract``). Nothing is
kept here and nothing is done while no observer is registered. The API key is never handed
on: only the headers named in :data:`KEPT_REQUEST_HEADERS` are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

KEPT_REQUEST_HEADERS = ("Content-Type", "Accept", "User-Agent")


@dataclass(frozen=True)
class Exchange:
    """One request the emulator answered, and its answer."""

    method: str
    path: str
    query_string: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int
    response_content_type: str
    response_body: bytes
    fault: str | None
    key_supplied: bool


Observer = Callable[[Exchange], None]
_observers: list[Observer] = []


def observed() -> bool:
    return bool(_observers)


@contextmanager
def observing(observer: Observer) -> Iterator[None]:
    """Hand every exchange of every emulator in this process to ``observer`` while inside."""
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)


def publish(exchange: Exchange) -> None:
    for observer in list(_observers):
        try:
            observer(exchange)
        except Exception:  # an observer must never break the server
            log.exception("traffic observer failed on %s %s", exchange.method, exchange.path)
