"""Checks shared by every argument that becomes a wait, a timeout or a retry budget, the one
escape applied to text a server sends before it can reach a log line, and what counts as a
loopback host (for the provider's plain-http rule and the emulator's bind address).

No Airflow import: the emulator uses it too.

Each check raises :class:`~airflow_provider_dune.exceptions.DuneConfigurationError` naming the
argument, the bad value and what would be accepted, so a DAG with a typo fails when it is
parsed or when the task starts, before any request.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import timedelta
from typing import Any

from airflow_provider_dune.exceptions import DuneConfigurationError


def _number(value: Any, name: str, what: str) -> float:
    # bool is an int in Python, but True is never a number of seconds somebody meant.
    if isinstance(value, bool):
        raise DuneConfigurationError(f"{name} must be {what}, got {value!r}.")
    if isinstance(value, timedelta):
        return value.total_seconds()
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise DuneConfigurationError(f"{name} must be {what}, got {value!r}.") from None


def positive_seconds(value: Any, name: str) -> float:
    """A finite number of seconds above zero (a number, a numeric string or a ``timedelta``).

    NaN compares false with everything, so a plain ``value <= 0`` check lets it through and a
    wait of NaN seconds then never ends or never waits; infinity never ends either.
    """
    what = "a positive, finite number of seconds"
    number = _number(value, name, what)
    if not math.isfinite(number) or number <= 0:
        raise DuneConfigurationError(f"{name} must be {what}, got {value!r}.")
    return number


def non_negative_seconds(value: Any, name: str) -> float:
    """A finite number of seconds, zero allowed (``0`` meaning "no wait")."""
    what = "zero or a positive, finite number of seconds"
    number = _number(value, name, what)
    if not math.isfinite(number) or number < 0:
        raise DuneConfigurationError(f"{name} must be {what}, got {value!r}.")
    return number


def optional_positive_seconds(value: Any, name: str) -> float | None:
    """:func:`positive_seconds`, or ``None`` for "no limit"."""
    return None if value is None else positive_seconds(value, name)


def optional_positive_number(value: Any, name: str) -> float | None:
    """A finite number above zero (a budget in credits), or ``None`` for "no limit"."""
    if value is None:
        return None
    what = "a positive, finite number"
    number = _number(value, name, what)
    if isinstance(value, timedelta) or not math.isfinite(number) or number <= 0:
        raise DuneConfigurationError(f"{name} must be {what}, got {value!r}.")
    return number


def positive_count(value: Any, name: str) -> int:
    """A whole number above zero (attempts, rows); ``3.0`` and ``"3"`` are accepted as 3."""
    what = "a positive whole number"
    number = _number(value, name, what)
    if not math.isfinite(number) or number < 1 or number != int(number):
        raise DuneConfigurationError(f"{name} must be {what}, got {value!r}.")
    return int(number)


def log_safe(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\n`` becomes the two characters
    ``\\`` ``n``), so a string a server sent cannot start a fake line in a task log, move the
    cursor or reverse the text around it. Printable text comes back unchanged."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode() for char in text)


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1): traffic that never leaves the machine."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
