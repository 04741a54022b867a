"""Which requests the emulator answers at all: the ``Host`` they name and the page that sent them.

A web page in the developer's browser can reach a server on 127.0.0.1 in two ways, and both
are closed here:

- **DNS rebinding**: the page's own host name is made to resolve to 127.0.0.1, so the browser
  sends ``Host: attacker.example`` to the emulator and lets the page read the answers. A
  request is answered only when its ``Host`` is the bound address, a loopback name
  (``localhost``, ``127.0.0.1``, ``::1``), any IP address when bound to all interfaces, or a
  name given with ``allowed_hosts``.
- **Cross-origin requests**: a page on another origin can send a form POST (the Maia token
  endpoint takes one) or a GET without being able to read the answer. A request whose
  ``Origin`` is not the emulator itself, or whose ``Sec-Fetch-Site`` says another site or
  origin sent it, is refused. Non-browser clients send neither header and are not affected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from airflow_provider_dune.validation import is_loopback

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
# What a browser says when the user typed the URL (none) or the emulator's own page asked.
_BROWSER_OK = frozenset({"same-origin", "none"})


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_name(host: str) -> str:
    """The name in a ``Host`` value: ``[::1]:8089`` -> ``::1``, ``Example.com.:80`` -> ``example.com``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, _, port = host.rpartition(":")
    return (name if name and port.isdigit() else host).rstrip(".")


class AllowedHosts:
    """The host names a request may address, for a server bound to ``bound``."""

    def __init__(self, bound: str, extra: Iterable[str] = ()) -> None:
        self.bound = host_name(bound)
        self.extra = frozenset(host_name(name) for name in extra)

    def allows(self, name: str) -> bool:
        if name in self.extra or name == self.bound or is_loopback(name):
            return True
        # Bound to every interface: any address of the machine is fine; a name is not (rebinding).
        return self.bound in _WILDCARDS and _is_ip(name)

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why a request with these headers is refused, or ``None`` to answer it."""
        host = headers.get("Host", "")
        if not self.allows(host_name(host)):
            return (
                f"Host {host!r} is not an address of this emulator; it answers only its own addresses "
                "(a DNS rebinding page would send its own name). Start it with --allowed-host to add a name."
            )
        origin = headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.strip().lower():
            return f"cross-origin browser requests are refused (Origin {origin!r})"
        site = headers.get("Sec-Fetch-Site")
        if site is not None and site.lower() not in _BROWSER_OK:
            return f"cross-origin browser requests are refused (Sec-Fetch-Site {site!r})"
        return None
