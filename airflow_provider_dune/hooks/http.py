"""The HTTP transport both hooks share: one retry loop, sync (requests) and async (aiohttp).

Sync calls (operators, sensors in poke mode) go through one ``requests.Session`` per hook.
Async calls (triggers) go through one ``aiohttp.ClientSession`` per event loop, shared by
every trigger in the triggerer, so a thousand deferred tasks use one connection pool rather
than a thousand.

A hook subclasses :class:`HttpServiceHook` and keeps only what is its own: how it reads its
connection (:meth:`~HttpServiceHook._credentials_from`), its URLs and auth headers, how it
reads an answer (an ``interpret(reply)`` callback that returns the decoded body or raises
:class:`Retryable` / the service's own errors) and the error it raises when the retries run
out (:meth:`~HttpServiceHook._gave_up`). The one :class:`~airflow_provider_dune.hooks.retry.RetryPolicy`
decides what is tried again.

Credentials go only where the connection points: redirects are never followed (a 3xx is an
error naming its target), plain ``http`` is refused for any host but loopback unless the
connection says ``allow_plain_http``, ids are checked before they become path segments, and
a URL's ``user:password@`` never appears in a message. Bodies are read up to a cap.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import SplitResult, urlsplit

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_provider_dune import __version__
from airflow_provider_dune.exceptions import DuneConfigurationError
from airflow_provider_dune.hooks.budget import BudgetSettings, RequestBudget, RequestClass, budget_for
from airflow_provider_dune.hooks.retry import RetryPolicy, parse_retry_after
from airflow_provider_dune.validation import is_loopback

if TYPE_CHECKING:
    # Imported where they are used: together they cost ~250 ms, paid by every DAG file that
    # imports an operator (the scheduler parses those often) though only running tasks need them.
    import aiohttp
    import requests

USER_AGENT = f"airflow-provider-dune/{__version__}"
# Connections kept open per triggerer event loop, whatever the number of triggers.
ASYNC_POOL_SIZE = 32
# The most of a good answer that is read: far above any results page (32,000 rows), far below
# what would take a worker down. Past it the call fails instead of filling memory.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
# Of an error answer only the start is read: the message is in the first few hundred bytes,
# and a 100 MB error page must not cost 100 MB to report.
MAX_ERROR_BODY_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024

CredsT = TypeVar("CredsT")


@dataclass(frozen=True)
class Reply:
    """What one attempt produced: a response, or no response (``status=None``)."""

    status: int | None
    body: bytes = b""
    content_type: str = ""
    retry_after: float | None = None
    # For status=None: whether the request may have reached the server before it failed.
    sent: bool = True
    transport_error: str = ""
    # Only the response headers the caller asked to keep (e.g. paging), never the whole set.
    headers: Mapping[str, str] = field(default_factory=dict)
    # The body was cut at the read cap (MAX_RESPONSE_BYTES, or MAX_ERROR_BODY_BYTES for an error).
    truncated: bool = False
    # For a 3xx: where the server wanted the request to go (credentials stripped), never followed.
    location: str = ""


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

# What a garbled body of a read counts as: worth another try, like a 5xx.
MALFORMED_BODY = Reply(None, sent=True, transport_error="malformed body")


class Retryable(Exception):
    """Raised by an ``interpret`` callback: ``error`` is raised unless the policy retries ``reply``."""

    def __init__(self, error: Exception, reply: Reply) -> None:
        self.error = error
        self.reply = reply


_shared_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)
_session_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
    weakref.WeakKeyDictionary()
)


async def _close_when_the_loop_ends(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await session.close()


def shared_async_session() -> aiohttp.ClientSession:
    """The connection pool of the running event loop, created on first use."""
    import aiohttp

    loop = asyncio.get_running_loop()
    session = _shared_sessions.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=ASYNC_POOL_SIZE, ttl_dns_cache=300),
            headers={"User-Agent": USER_AGENT},
        )
        _shared_sessions[loop] = session
        # A triggerer's loop lives as long as the process, but `airflow dags test` runs each
        # trigger in its own asyncio.run(): the pool must close with that loop, or aiohttp
        # reports it unclosed. asyncio.run() closes every async generator begun in its loop
        # (shutdown_asyncgens), so one begun here closes the pool at that moment.
        closer = _close_when_the_loop_ends(session)
        with suppress(StopIteration):  # the generator's first step ends at its `yield`
            closer.asend(None).send(None)
        _session_closers[loop] = closer
    return session


async def close_shared_async_session() -> None:
    """Close the running loop's pool (tests and benchmarks; the triggerer keeps it for its life)."""
    loop = asyncio.get_running_loop()
    session = _shared_sessions.pop(loop, None)
    closer = _session_closers.pop(loop, None)
    if closer is not None:
        await closer.aclose()
    if session is not None and not session.closed:
        await session.close()


def _reply(
    status: int,
    body: bytes,
    truncated: bool,
    headers: Mapping[str, str],
    keep_headers: Collection[str],
) -> Reply:
    """The reply of an attempt that got a response (``headers`` are case-insensitive)."""
    return Reply(
        status,
        body,
        headers.get("Content-Type", ""),
        # Only an error answer's Retry-After matters (429, 503); a good answer is read every poll.
        parse_retry_after(headers.get("Retry-After")) if status >= 400 else None,
        headers={name: headers[name] for name in keep_headers if name in headers}
        if keep_headers
        else _NO_HEADERS,
        truncated=truncated,
        location=redact_url(headers.get("Location", "")) if 300 <= status < 400 else "",
    )


def body_cap(status: int) -> int:
    return MAX_RESPONSE_BYTES if status < 300 else MAX_ERROR_BODY_BYTES


def declared_within(headers: Mapping[str, str], cap: int) -> bool:
    """Whether the body is known to fit in ``cap`` before reading it: an uncompressed body (a
    compressed one may grow when decoded) whose ``Content-Length`` is at most ``cap``. Such a
    body is read in one go; any other is read in chunks, counting."""
    if headers.get("Content-Encoding", "identity").lower() != "identity":
        return False
    try:
        return int(headers["Content-Length"]) <= cap
    except (KeyError, ValueError):
        return False


def read_capped(chunks: Iterable[bytes], cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of a streamed body, and whether there was more (not read)."""
    kept: list[bytes] = []
    size = 0
    for chunk in chunks:
        if size + len(chunk) > cap:
            kept.append(chunk[: cap - size])
            return b"".join(kept), True
        kept.append(chunk)
        size += len(chunk)
    return b"".join(kept), False


async def _aread_capped(stream: aiohttp.StreamReader, cap: int) -> tuple[bytes, bool]:
    """The async twin of :func:`read_capped`."""
    kept = bytearray()
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            return bytes(kept), False
        if len(kept) + len(chunk) > cap:
            kept += chunk[: cap - len(kept)]
            return bytes(kept), True
        kept += chunk


def unusable_answer(reply: Reply) -> str | None:
    """Why a reply below 400 cannot be taken as the answer (a redirect, a body over the cap),
    phrased to follow "<service> API <method> <path> ..."; ``None`` when it can."""
    status = reply.status or 0
    if 300 <= status < 400:
        target = reply.location or "no Location"
        return (
            f"answered HTTP {status}, a redirect to {target}. Redirects are never followed, so that "
            "credentials go only to the configured URL: point the connection at the final URL."
        )
    if reply.truncated:
        return (
            f"answered with more than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB; it was not read "
            "further. Ask for less at a time (a smaller page_size, fewer columns)."
        )
    return None


def redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part, for messages and events."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=_netloc(parts)).geturl()


def _netloc(parts: SplitResult) -> str:
    """Host and port, without a ``user:password@``."""
    return parts.netloc.rpartition("@")[2]


def check_transport_security(url: str, setting: str, conn_id: str, allow_plain_http: bool) -> None:
    """Refuse a plain ``http`` URL to anything but loopback, unless the connection allows it."""
    parts = urlsplit(url)
    if parts.scheme != "http" or allow_plain_http or is_loopback(parts.hostname):
        return
    raise DuneConfigurationError(
        f"The connection {conn_id!r} has {setting} {redact_url(url)!r}: plain http would send the "
        f"credentials unencrypted to {parts.hostname}. Use https, or, if you mean it (a private "
        'network), set "allow_plain_http": true in the connection\'s extras. Only loopback hosts '
        "(127.0.0.1, localhost, ::1), such as the local emulator, are allowed http without it."
    )


def allows_plain_http(extras: Mapping[str, Any]) -> bool:
    """The ``allow_plain_http`` extra: JSON ``true`` or the text ``"true"``, nothing else."""
    value = extras.get("allow_plain_http")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _request_class(method: str) -> RequestClass:
    """Reads are Dune's high-limit endpoints; what starts or stops work is low-limit."""
    return RequestClass.HIGH if method == "GET" else RequestClass.LOW


def transport_failure(exc: BaseException, connect_phase: bool, url: str) -> Reply:
    """The reply of an attempt that got no response; ``connect_phase``: nothing was sent."""
    host = _netloc(urlsplit(url))
    if connect_phase:
        text = f"could not connect to {host} ({type(exc).__name__})"
    else:
        text = f"connection to {host} lost or timed out after sending ({type(exc).__name__})"
    return Reply(None, sent=not connect_phase, transport_error=text)


def requests_connect_phase(exc: requests.RequestException) -> bool:
    """Whether a requests failure happened while connecting (refused, or the connect timed out),
    so nothing was sent."""
    import requests

    if isinstance(exc, requests.ConnectTimeout):
        return True
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    markers = (NewConnectionError, ConnectTimeoutError)
    cause: BaseException | None = exc
    for _ in range(6):
        if cause is None:
            return False
        if isinstance(cause, markers):
            return True
        # requests wraps urllib3's MaxRetryError (in args and in __context__), which holds the
        # real failure in .reason.
        reason = getattr(cause, "reason", None)
        first_arg = cause.args[0] if cause.args else None
        if isinstance(reason, BaseException):
            cause = reason
        elif isinstance(first_arg, BaseException):
            cause = first_arg
        else:
            cause = cause.__cause__ or cause.__context__
    return False


_PATH_UNSAFE = frozenset("/?#%\\ ")


def path_id(value: Any, service: str) -> str:
    """An id placed in one URL path segment: refuse anything that could change the path.

    A ``/``, ``\\``, ``?``, ``#`` or ``%`` would split, end or re-encode the segment, and a
    segment of dots (``.``, ``..``) is resolved away by URL normalisation, so that
    ``delete_materialized_view("..")`` would send ``DELETE /api/v1/``.
    """
    text = "" if value is None or isinstance(value, bool) else str(value).strip()
    if not text or not _PATH_UNSAFE.isdisjoint(text) or not text.isprintable() or not text.strip("."):
        raise DuneConfigurationError(
            f"{value!r} is not a valid {service} id: an id must not be empty, be only dots, or "
            "contain / \\ ? # % or spaces."
        )
    return text


class HttpServiceHook(BaseHook, Generic[CredsT]):
    """What the Dune and Maia hooks share: the cached connection lookup and the retrying transport.

    The hook sets ``timeout``, ``retry_policy`` and ``_session``/``_creds`` (``None``) in its
    ``__init__``, and implements :meth:`_conn_id`,
    :meth:`_credentials_from`, :meth:`_missing_connection` and :meth:`_gave_up`. Its
    ``_credentials_from`` also calls :meth:`_use_budget`, so that every request the hook sends
    first takes a slot from its key's :class:`~airflow_provider_dune.hooks.budget.RequestBudget`.
    """

    timeout: float
    retry_policy: RetryPolicy
    _session: requests.Session | None
    _creds: CredsT | None
    _budget: RequestBudget | None = None
    # Seconds this hook's requests waited for a slot of the key's budget, in all.
    budget_delay_seconds: float = 0.0
    _budget_said: bool = False

    # ------------------------------------------------------------------ what each hook supplies

    def _conn_id(self) -> str:
        raise NotImplementedError

    def _credentials_from(self, conn: Any, extras: Any) -> CredsT:
        """Check the connection and its extras (a dict, if well-formed) and build the credentials."""
        raise NotImplementedError

    def _missing_connection(self) -> Exception:
        raise NotImplementedError

    def _gave_up(self, error: Exception, attempts: int, elapsed: float) -> Exception:
        """The error to raise once the policy has no budget left for another attempt."""
        raise NotImplementedError

    # ------------------------------------------------------------------ credentials

    def _credentials(self) -> CredsT:
        if self._creds is None:
            try:
                conn = self.get_connection(self._conn_id())
            except AirflowNotFoundException:
                raise self._missing_connection() from None
            self._creds = self._credentials_from(conn, conn.extra_dejson)
        return self._creds

    async def _acredentials(self) -> CredsT:
        # The sync lookup blocks the triggerer's loop (and on Airflow 3 can deadlock it).
        if self._creds is None:
            # Imported here: only triggers need it, and it is a noticeable part of import time.
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            try:
                conn = await get_async_connection(self._conn_id(), hook=self)
            except AirflowNotFoundException:
                raise self._missing_connection() from None
            self._creds = self._credentials_from(conn, await get_async_extra_dejson(conn))
        return self._creds

    # ------------------------------------------------------------------ the key's request budget

    def _use_budget(self, base_url: str, identity: str, extras: Mapping[str, Any]) -> None:
        """Take the process-wide budget of this key (``identity``: the key or client id)."""
        self._budget = budget_for(base_url, identity, BudgetSettings.from_extras(extras, self._conn_id()))

    def _slot(self, method: str, urgent: bool) -> float:
        """Seconds to wait before sending: the slot this request takes in the key's budget."""
        budget = self._budget
        if budget is None:
            return 0.0
        delay = budget.reserve(_request_class(method), urgent=urgent)
        if delay:
            self.budget_delay_seconds += delay
            if delay >= 1.0 and not self._budget_said:
                self._budget_said = True
                rate = budget.per_minute(_request_class(method))
                self.log.info(
                    "The API key's request budget in this process (%s, now %.0f %s-limit requests/min) "
                    "is in use: requests wait their turn (%.1fs now), spread evenly over every wait.",
                    budget.settings.describe,
                    rate or 0,
                    _request_class(method).value,
                    delay,
                )
        return delay

    def _heard(self, method: str, reply: Reply) -> None:
        """Let the key's budget adapt: slow down on a 429, recover on any other answer."""
        budget = self._budget
        if budget is None or reply.status is None:
            return
        if reply.status == 429:
            budget.throttled(_request_class(method))
        elif reply.status < 500:
            budget.answered(_request_class(method))

    # ------------------------------------------------------------------ retry policy

    def _backoff(self, starts_work: bool, first: float) -> Callable[[Retryable], float]:
        """For one call, started at ``first`` (monotonic): after each failed attempt, the wait
        before the next one (logged), or raise when the policy says stop."""
        attempt = 0

        def next_delay(retry: Retryable) -> float:
            nonlocal attempt
            attempt += 1
            policy = self.retry_policy
            reply = retry.reply
            if not policy.should_retry(starts_work=starts_work, status=reply.status, request_sent=reply.sent):
                raise retry.error
            delay = policy.delay(attempt, reply.retry_after)
            elapsed = time.monotonic() - first
            if not policy.has_budget(attempt, elapsed, delay):
                raise self._gave_up(retry.error, attempt, elapsed)
            self.log.warning("%s Retrying in %.1fs (attempt %d).", retry.error, delay, attempt + 1)
            return delay

        return next_delay

    @contextmanager
    def _quick_retries(self) -> Iterator[None]:
        """For the connection form, which waits on the call: answer in seconds, not minutes."""
        policy = self.retry_policy
        self.retry_policy = RetryPolicy(max_attempts=2, base_delay=0.5, max_total_seconds=5)
        try:
            yield
        finally:
            self.retry_policy = policy

    # ------------------------------------------------------------------ sync transport

    def get_session(self) -> requests.Session:
        import requests

        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        keep_headers: Collection[str] = (),
    ) -> Reply:
        """One attempt; never raises for a failed connection (the reply says what happened).

        Redirects are not followed (``requests`` would re-send every header, the key included,
        to wherever a 3xx points), and the body is read up to :func:`body_cap`.
        """
        import requests

        try:
            resp = self.get_session().request(
                method,
                url,
                json=json_body,
                data=form,
                params=params,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            # A failure while connecting never reached the server; a later one might have.
            connect_phase = requests_connect_phase(exc)
            return transport_failure(exc, connect_phase, url)
        try:
            cap = body_cap(resp.status_code)
            if declared_within(resp.headers, cap):
                body, truncated = resp.content, False
            else:
                body, truncated = read_capped(resp.iter_content(_READ_CHUNK), cap)
        except requests.RequestException as exc:
            return transport_failure(exc, False, url)
        finally:
            # Returns the connection to the pool when the body was read whole, else drops it.
            resp.close()
        return _reply(resp.status_code, body, truncated, resp.headers, keep_headers)

    def _call(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        interpret: Callable[[Reply], Any],
        *,
        starts_work: bool = False,
        urgent: bool = False,
        budgeted: bool = True,
        **send: Any,
    ) -> Any:
        """Send under the retry policy until ``interpret`` accepts a reply; return what it returns.

        Each attempt first takes a slot of the key's budget (``budgeted``; ``urgent``, for a
        cancel, never waits for it). ``send`` holds :meth:`_send`'s keywords (``params``,
        ``json_body``, ``form``, ``keep_headers``).
        """
        started = time.monotonic()
        next_delay = None  # built on the first failure: almost every call succeeds at once
        while True:
            if budgeted and (wait := self._slot(method, urgent)):
                time.sleep(wait)
            reply = self._send(method, url, headers, **send)
            if budgeted:
                self._heard(method, reply)
            try:
                return interpret(reply)
            except Retryable as retry:
                next_delay = next_delay or self._backoff(starts_work, started)
                time.sleep(next_delay(retry))

    # ------------------------------------------------------------------ async transport

    async def _asend(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        keep_headers: Collection[str] = (),
    ) -> Reply:
        """The async twin of :meth:`_send`, on the event loop's shared connection pool."""
        import aiohttp

        session = shared_async_session()
        try:
            async with session.request(
                method,
                url,
                json=json_body,
                data=form,
                params=params,
                headers=headers,
                timeout=self._aiohttp_timeout(),
                allow_redirects=False,
            ) as resp:
                cap = body_cap(resp.status)
                if declared_within(resp.headers, cap):
                    body, truncated = await resp.read(), False
                else:
                    body, truncated = await _aread_capped(resp.content, cap)
                return _reply(resp.status, body, truncated, resp.headers, keep_headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            connect_phase = isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
            return transport_failure(exc, connect_phase, url)

    def _aiohttp_timeout(self) -> aiohttp.ClientTimeout:
        # Built once per hook (and again only if the setting changed), not on every poll.
        cached = getattr(self, "_client_timeout", None)
        if cached is None or cached.total != self.timeout:
            import aiohttp

            cached = self._client_timeout = aiohttp.ClientTimeout(total=self.timeout)
        return cached

    async def _acall(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        interpret: Callable[[Reply], Any],
        *,
        starts_work: bool = False,
        urgent: bool = False,
        budgeted: bool = True,
        **send: Any,
    ) -> Any:
        """The async twin of :meth:`_call`."""
        started = time.monotonic()
        next_delay = None  # built on the first failure: almost every call succeeds at once
        while True:
            if budgeted and (wait := self._slot(method, urgent)):
                await asyncio.sleep(wait)
            reply = await self._asend(method, url, headers, **send)
            if budgeted:
                self._heard(method, reply)
            try:
                return interpret(reply)
            except Retryable as retry:
                next_delay = next_delay or self._backoff(starts_work, started)
                await asyncio.sleep(next_delay(retry))
