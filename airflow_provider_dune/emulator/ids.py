"""Identifiers shaped like Dune's: execution and pipeline execution ids are ULIDs."""

from __future__ import annotations

import os
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last: tuple[int, int] = (0, 0)


def new_ulid() -> str:
    """A 26-character ULID; monotonic within one millisecond so ids sort in creation order."""
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        if millis <= last_millis:
            # Same (or a backwards-stepping) clock tick: keep ordering by bumping the random part.
            millis, randomness = last_millis, last_random + 1
        else:
            randomness = int.from_bytes(os.urandom(10), "big") >> 1
        _last = (millis, randomness)
    value = (millis << 80) | (randomness & ((1 << 80) - 1))
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
