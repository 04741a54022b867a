"""Keeping what the emulator remembers bounded, so a long test run does not grow without end."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import TypeVar

_RunT = TypeVar("_RunT")


def forget_oldest_finished(runs: dict[str, _RunT], keep: int, finished: Callable[[_RunT], bool]) -> None:
    """Delete the oldest finished entries of ``runs`` (a dict keeps insertion order) until at
    most ``keep`` are left, or only unfinished ones: those end on their own and are forgotten
    later."""
    excess = len(runs) - keep
    if excess > 0:
        for run_id in list(islice((key for key, run in runs.items() if finished(run)), excess)):
            del runs[run_id]
