"""DuneHook: the Dune connection and every HTTP call this provider makes, sync and async.

Sync calls (operators, sensors in poke mode) go through one ``requests.Session`` per hook.
Async calls (triggers) go through one ``aiohttp.ClientSession`` per event loop, shared by
every trigger in the triggerer, so a thousand deferred tasks use one connection pool rather
than a thousand. The API key travels only in the ``X-Dune-Api-Key`` header of each request;
it is registered with Airflow's secret masker the moment it is read.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import requests
from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook, mask_secret

from airflow_provider_dune import __version__
from airflow_provider_dune.exceptions import DuneApiError, DuneConfigurationError, DuneResponseError
from airflow_provider_dune.hooks.retry import RetryPolicy, parse_retry_after
from airflow_provider_dune.models.dune import (
    ExecutionStatus,
    PipelineStatus,
    ResultPage,
    parse_execution_status,
    parse_pipeline_status,
    parse_result_page,
)
from airflow_provider_dune.models.pipeline_spec import build_pipeline_request
from airflow_provider_dune.runs.outcome import RunOutcome

DEFAULT_BASE_URL = "https://api.dune.com/api"
USER_AGENT = f"airflow-provider-dune/{__version__}"
# Connections to Dune kept open per triggerer event loop, whatever the number of triggers.
ASYNC_POOL_SIZE = 32
_MAX_ERROR_TEXT = 300


@dataclass(frozen=True)
class _Credentials:
    base_url: str
    api_key: str

    def __repr__(self) -> str:  # never print the key, even in a debugger or a traceback
        return f"_Credentials(base_url={self.base_url!r}, api_key=***)"


@dataclass(frozen=True)
class _Reply:
    """What one attempt produced: a response, or no response (``status=None``)."""

    status: int | None
    body: bytes = b""
    content_type: str = ""
    retry_after: float | None = None
    # For status=None: whether the request may have reached the server before it failed.
    sent: bool = True
    transport_error: str = ""


class _Retryable(Exception):
    def __init__(self, error: DuneApiError | DuneResponseError, reply: _Reply) -> None:
        self.error = error
        self.reply = reply


_shared_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def shared_async_session() -> aiohttp.ClientSession:
    """The connection pool of the running event loop, created on first use."""
    loop = asyncio.get_running_loop()
    session = _shared_sessions.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=ASYNC_POOL_SIZE, ttl_dns_cache=300),
            headers={"User-Agent": USER_AGENT},
        )
        _shared_sessions[loop] = session
    return session


async def close_shared_async_session() -> None:
    """Close the running loop's pool (tests and benchmarks; the triggerer keeps it for its life)."""
    session = _shared_sessions.pop(asyncio.get_running_loop(), None)
    if session is not None and not session.closed:
        await session.close()


def _error_text(body: bytes, content_type: str) -> str:
    """Dune's ``{"error": ...}`` message, or a short, safe description of whatever came back."""
    if not body.strip():
        return "empty response body"
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        err = payload.get("error")
        if isinstance(err, str) and err:
            return err
        if isinstance(err, Mapping) and err.get("message"):
            return str(err["message"])
        return f"unexpected JSON body: {body[:_MAX_ERROR_TEXT].decode(errors='replace')}"
    if "html" in content_type or body.lstrip()[:1] == b"<":
        return "an HTML page instead of JSON (a proxy or gateway error, or a wrong base URL)"
    return body[:_MAX_ERROR_TEXT].decode(errors="replace").strip()


def _decode_json(body: bytes, method: str, path: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        snippet = "empty body" if not body.strip() else f"{len(body)} bytes that are not JSON"
        raise DuneResponseError(f"Dune API {method} {path} returned {snippet}.") from None


class DuneHook(BaseHook):
    """
    Talks to the Dune API with the key stored in an Airflow connection.

    The connection's password is the API key. Its host, when set, is the full base URL
    (default ``https://api.dune.com/api``), so the same DAG runs against the local emulator
    with ``host=http://127.0.0.1:8089/api``.

    :param dune_conn_id: the Airflow connection holding the key.
    :param timeout: seconds allowed for each HTTP call.
    :param retry_limit: attempts in all for a call that may be retried.
    :param retry_delay: first backoff in seconds (doubles each attempt, with jitter).
    :param retry_max_seconds: overall time after which a retried call gives up.
    """

    conn_name_attr = "dune_conn_id"
    default_conn_name = "dune_default"
    conn_type = "dune"
    hook_name = "Dune"

    def __init__(
        self,
        dune_conn_id: str = default_conn_name,
        *,
        timeout: float = 30.0,
        retry_limit: int = 6,
        retry_delay: float = 1.0,
        retry_max_seconds: float = 300.0,
    ) -> None:
        super().__init__()
        self.dune_conn_id = dune_conn_id
        self.timeout = timeout
        self.retry_policy = RetryPolicy(
            max_attempts=retry_limit, base_delay=retry_delay, max_total_seconds=retry_max_seconds
        )
        self._creds: _Credentials | None = None
        self._session: requests.Session | None = None
        # 429 answers seen by this hook; the polling loop stretches its interval when it grows.
        self.rate_limited_count = 0

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "port", "login", "extra"],
            "relabeling": {"password": "API key", "host": "Base URL"},
            "placeholders": {
                "password": "Your Dune API key (dune.com > Settings > API)",
                "host": f"{DEFAULT_BASE_URL} (leave empty for Dune; set for the local emulator)",
            },
        }

    # ------------------------------------------------------------------ credentials

    def _credentials_from(self, conn: Any) -> _Credentials:
        key = (conn.password or "").strip()
        if not key:
            raise DuneConfigurationError(
                f"The Airflow connection {self.dune_conn_id!r} has no API key. Put your Dune API key "
                "in the connection's password ('API key' in the connection form)."
            )
        if any(c.isspace() for c in key) or not key.isprintable():
            raise DuneConfigurationError(
                f"The API key in connection {self.dune_conn_id!r} contains whitespace or control "
                "characters; copy it again from dune.com > Settings > API."
            )
        mask_secret(key)
        host = (conn.host or "").strip()
        if not host:
            base_url = DEFAULT_BASE_URL
        elif "://" in host:
            base_url = host
        else:
            # A bare host name, as the connection URI form gives it: Dune's API lives under /api.
            base_url = f"https://{host}" + (f":{conn.port}" if conn.port else "")
            if "/" not in host:
                base_url += "/api"
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise DuneConfigurationError(
                f"The connection {self.dune_conn_id!r} has host {host!r}, which is not an http(s) base URL. "
                f"Leave it empty for Dune ({DEFAULT_BASE_URL}) or give the full URL, e.g. "
                "http://127.0.0.1:8089/api for the local emulator."
            )
        if parts.query:
            raise DuneConfigurationError(
                f"The connection {self.dune_conn_id!r} has a base URL with a query string; remove it "
                "(the API key belongs in the password, never in a URL)."
            )
        return _Credentials(base_url=base_url.rstrip("/"), api_key=key)

    def _missing_connection(self) -> DuneConfigurationError:
        return DuneConfigurationError(
            f"There is no Airflow connection {self.dune_conn_id!r}. Create it in the UI (Admin > "
            "Connections, type 'Dune', API key as the password) or set "
            f'AIRFLOW_CONN_{self.dune_conn_id.upper()}=\'{{"conn_type": "dune", "password": "<key>"}}\'.'
        )

    def _credentials(self) -> _Credentials:
        if self._creds is None:
            try:
                conn = self.get_connection(self.dune_conn_id)
            except AirflowNotFoundException:
                raise self._missing_connection() from None
            self._creds = self._credentials_from(conn)
        return self._creds

    async def _acredentials(self) -> _Credentials:
        # The sync lookup blocks the triggerer's loop (and on Airflow 3 can deadlock it).
        if self._creds is None:
            try:
                conn = await get_async_connection(self.dune_conn_id, hook=self)
            except AirflowNotFoundException:
                raise self._missing_connection() from None
            self._creds = self._credentials_from(conn)
        return self._creds

    def _headers(self, creds: _Credentials) -> dict[str, str]:
        return {"X-Dune-Api-Key": creds.api_key, "User-Agent": USER_AGENT, "Accept": "application/json"}

    # ------------------------------------------------------------------ sync transport

    def get_session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _request(
        self,
        method: str,
        path: str,
        *,
        starts_work: bool = False,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one API call under the retry policy; return the decoded JSON body."""
        creds = self._credentials()
        session = self.get_session()
        url = creds.base_url + path
        first = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = session.request(
                    method,
                    url,
                    json=json_body,
                    params=params,
                    headers=self._headers(creds),
                    timeout=self.timeout,
                )
                reply = _Reply(
                    resp.status_code,
                    resp.content,
                    resp.headers.get("Content-Type", ""),
                    parse_retry_after(resp.headers.get("Retry-After")),
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                # A failure while connecting never reached the server; a later one might have.
                connect_phase = isinstance(exc, requests.ConnectTimeout) or _is_connect_failure(exc)
                reply = _transport_failure(exc, connect_phase, url)
            try:
                return _interpret(reply, method, path, starts_work)
            except _Retryable as retry:
                delay = self._next_delay(retry, attempt, first, starts_work)
                self.log.warning("%s Retrying in %.1fs (attempt %d).", retry.error, delay, attempt + 1)
                time.sleep(delay)

    def _next_delay(self, retry: _Retryable, attempt: int, first: float, starts_work: bool) -> float:
        """The wait before the next attempt, or raise when the policy says stop."""
        policy = self.retry_policy
        reply = retry.reply
        if reply.status == 429:
            self.rate_limited_count += 1
        if not policy.should_retry(starts_work=starts_work, status=reply.status, request_sent=reply.sent):
            raise retry.error
        delay = policy.delay(attempt, reply.retry_after)
        if not policy.has_budget(attempt, time.monotonic() - first, delay):
            raise _gave_up(retry.error, attempt, time.monotonic() - first)
        return delay

    # ------------------------------------------------------------------ async transport

    async def _arequest(
        self,
        method: str,
        path: str,
        *,
        starts_work: bool = False,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """The async twin of :meth:`_request`, on the event loop's shared connection pool."""
        creds = await self._acredentials()
        session = shared_async_session()
        url = creds.base_url + path
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        first = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with session.request(
                    method, url, json=json_body, params=params, headers=self._headers(creds), timeout=timeout
                ) as resp:
                    reply = _Reply(
                        resp.status,
                        await resp.read(),
                        resp.headers.get("Content-Type", ""),
                        parse_retry_after(resp.headers.get("Retry-After")),
                    )
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                connect_phase = isinstance(
                    exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
                )
                reply = _transport_failure(exc, connect_phase, url)
            try:
                return _interpret(reply, method, path, starts_work)
            except _Retryable as retry:
                delay = self._next_delay(retry, attempt, first, starts_work)
                self.log.warning("%s Retrying in %.1fs (attempt %d).", retry.error, delay, attempt + 1)
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ API: pipelines

    def execute_pipeline(
        self,
        *,
        query_id: int | None = None,
        nodes: list[Mapping[str, Any]] | None = None,
        performance: str = "medium",
        query_parameters: Mapping[str, Any] | None = None,
    ) -> str:
        """Start a pipeline and return its ``pipeline_execution_id``.

        Either ``query_id`` (Dune builds the pipeline from the query's lineage) or ``nodes``
        (an explicit pipeline). The body is validated before anything is sent.
        """
        body = build_pipeline_request(
            query_id=query_id, nodes=nodes, performance=performance, query_parameters=query_parameters
        )
        payload = self._request("POST", "/v1/pipelines/execute", starts_work=True, json_body=body)
        return _started_id(payload, "pipeline_execution_id", "/v1/pipelines/execute")

    def get_pipeline_status(self, pipeline_execution_id: str) -> PipelineStatus:
        payload = self._request("GET", f"/v1/pipelines/executions/{_path_id(pipeline_execution_id)}/status")
        return parse_pipeline_status(pipeline_execution_id, payload)

    async def aget_pipeline_status(self, pipeline_execution_id: str) -> PipelineStatus:
        payload = await self._arequest(
            "GET", f"/v1/pipelines/executions/{_path_id(pipeline_execution_id)}/status"
        )
        return parse_pipeline_status(pipeline_execution_id, payload)

    def cancel_pipeline(self, status: PipelineStatus) -> list[str]:
        """Cancel every node execution of the pipeline that is still running.

        Dune has no pipeline cancel endpoint: a pipeline is stopped by cancelling its nodes.
        Returns the execution ids it cancelled.
        """
        cancelled = []
        for node in status.nodes:
            if node.outcome is RunOutcome.RUNNING and node.execution_id:
                try:
                    self.cancel_execution(node.execution_id)
                    cancelled.append(node.execution_id)
                except DuneApiError as exc:
                    self.log.warning(
                        "Could not cancel %s execution %s: %s", node.label, node.execution_id, exc
                    )
        return cancelled

    # ------------------------------------------------------------------ API: executions

    def get_execution_status(self, execution_id: str) -> ExecutionStatus:
        payload = self._request("GET", f"/v1/execution/{_path_id(execution_id)}/status")
        return parse_execution_status(execution_id, payload)

    async def aget_execution_status(self, execution_id: str) -> ExecutionStatus:
        payload = await self._arequest("GET", f"/v1/execution/{_path_id(execution_id)}/status")
        return parse_execution_status(execution_id, payload)

    def cancel_execution(self, execution_id: str) -> bool:
        """Cancel one execution; ``True`` when Dune confirms. Safe to repeat."""
        payload = self._request("POST", f"/v1/execution/{_path_id(execution_id)}/cancel")
        return bool(isinstance(payload, Mapping) and payload.get("success"))

    async def acancel_execution(self, execution_id: str) -> bool:
        payload = await self._arequest("POST", f"/v1/execution/{_path_id(execution_id)}/cancel")
        return bool(isinstance(payload, Mapping) and payload.get("success"))

    def get_result_page(self, execution_id: str, *, limit: int = 1000, offset: int = 0) -> ResultPage:
        """One page of an execution's result rows (JSON), ``limit`` rows from ``offset``."""
        payload = self._request(
            "GET",
            f"/v1/execution/{_path_id(execution_id)}/results",
            params={"limit": limit, "offset": offset},
        )
        return parse_result_page(execution_id, payload)

    # ------------------------------------------------------------------ connection test

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call: list at most one materialized view."""
        policy = self.retry_policy
        # The connection form waits on this call: answer in seconds, not after minutes of retries.
        self.retry_policy = RetryPolicy(max_attempts=2, base_delay=0.5, max_total_seconds=5)
        try:
            self._request("GET", "/v1/materialized-views", params={"limit": 1})
        except DuneApiError as exc:
            if exc.status_code in (401, 403):
                return False, f"Dune rejected the API key (HTTP {exc.status_code}): {exc.message}"
            return False, str(exc)
        except Exception as exc:
            return False, str(exc)
        finally:
            self.retry_policy = policy
        return True, "Connected to Dune: the API key was accepted."


def _interpret(reply: _Reply, method: str, path: str, starts_work: bool) -> Any:
    """Decoded JSON of a good reply; :class:`_Retryable` for anything else (the policy decides)."""
    if reply.status is None:
        raise _Retryable(
            DuneApiError(
                None,
                reply.transport_error,
                method=method,
                path=path,
                may_have_started=starts_work and reply.sent,
            ),
            reply,
        )
    if reply.status >= 400:
        error = DuneApiError(
            reply.status,
            _error_text(reply.body, reply.content_type),
            method=method,
            path=path,
            may_have_started=starts_work and reply.status >= 500,
        )
        raise _Retryable(error, reply)
    try:
        return _decode_json(reply.body, method, path)
    except DuneResponseError as exc:
        if starts_work:
            # Dune accepted the work but we cannot read its id: resubmitting could run it twice.
            raise DuneResponseError(
                f"{exc} The request may have started work on Dune; it was not retried."
            ) from None
        # A garbled read is worth another try, like a 5xx.
        raise _Retryable(exc, _Reply(None, sent=True, transport_error="malformed body")) from None


def _transport_failure(exc: BaseException, connect_phase: bool, url: str) -> _Reply:
    host = urlsplit(url).netloc
    if connect_phase:
        text = f"could not connect to {host} ({type(exc).__name__})"
    else:
        text = f"connection to {host} lost or timed out after sending ({type(exc).__name__})"
    return _Reply(None, sent=not connect_phase, transport_error=text)


def _gave_up(error: Exception, attempts: int, elapsed: float) -> Exception:
    text = f"{error} Gave up after {attempts} attempts over {elapsed:.0f}s."
    if isinstance(error, DuneApiError):
        return DuneApiError(
            error.status_code,
            f"{error.message} (gave up after {attempts} attempts over {elapsed:.0f}s)",
            method=error.method,
            path=error.path,
            may_have_started=error.may_have_started,
        )
    return DuneResponseError(text)


def _is_connect_failure(exc: requests.RequestException) -> bool:
    """Whether a requests ConnectionError happened while connecting (nothing was sent)."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 6:
        if isinstance(cause, (NewConnectionError, ConnectTimeoutError)):
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
        seen += 1
    return False


def _path_id(value: str) -> str:
    """An id placed in a URL path: refuse anything that would change the path."""
    text = str(value).strip()
    if not text or any(c in text for c in "/?#%\\ ") or not text.isprintable():
        raise DuneConfigurationError(f"{value!r} is not a valid Dune id.")
    return text


def _started_id(payload: Any, field: str, path: str) -> str:
    value = payload.get(field) if isinstance(payload, Mapping) else None
    if not isinstance(value, str) or not value:
        raise DuneResponseError(
            f"Dune accepted POST {path} but its answer has no {field!r}; the work may have started. "
            "Check the Dune UI before re-running."
        )
    return value
