"""MaiaHook: the Maia (Matillion Data Productivity Cloud) connection and every call made to it.

Auth is OAuth2 client credentials: the connection's login is the client id, its password the
client secret. A bearer token is fetched from Matillion's token endpoint with a form POST,
kept in a process-wide cache until shortly before it expires (so the many triggers of one
triggerer share one token instead of fetching one each), and fetched anew once when the API
answers 401. The secret and the tokens are registered with Airflow's secret masker, never
logged, never put in trigger kwargs or XCom.

The transport is the Dune hook's (:mod:`airflow_provider_dune.hooks.http`): one
``requests.Session`` per hook for sync calls, the event loop's shared aiohttp pool for async
ones, and the provider's one :class:`~airflow_provider_dune.hooks.retry.RetryPolicy`:
reads, cancels and token requests are retried on 429, 5xx (504 included) and lost
connections; the POST that starts a pipeline only when Maia certainly did not start it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import mask_secret

from airflow_provider_dune.connection_forms import MAIA_BEHAVIOUR, plain_extras
from airflow_provider_dune.exceptions import (
    DuneConfigurationError,
    MaiaApiError,
    MaiaResponseError,
)
from airflow_provider_dune.hooks.http import (
    MALFORMED_BODY,
    USER_AGENT,
    HttpServiceHook,
    Reply,
    Retryable,
    allows_plain_http,
    check_transport_security,
    path_id,
    redact_url,
    unusable_answer,
)

if TYPE_CHECKING:
    import requests
from airflow_provider_dune.hooks.retry import RetryPolicy
from airflow_provider_dune.models.maia import (
    MaiaExecutionDetails,
    MaiaPipelineStatus,
    parse_execution_message,
    parse_pipeline_status,
    parse_problem,
    parse_steps,
)
from airflow_provider_dune.validation import log_safe, positive_count, positive_seconds

REGIONS = ("eu1", "us1")
# Steps read to explain a failure: a pipeline rarely has more; the first failing ones are enough.
STEPS_PAGE_SIZE = 100
DEFAULT_REGION = "eu1"
BASE_URL_TEMPLATE = "https://{region}.api.matillion.com/dpc"
DEFAULT_TOKEN_URL = "https://id.core.matillion.com/oauth/dpc/token"
DEFAULT_AUDIENCE = "https://api.matillion.com"
# A token lives 30 minutes (older docs: 2 hours). Refresh this long before it expires, so a
# call never leaves with a token that dies in flight; at most a tenth of a short lifetime.
REFRESH_MARGIN_SECONDS = 60.0
DEFAULT_TOKEN_SECONDS = 1800.0
# A token is kept at most this long, whatever expires_in says: a 401 fetches a new one anyway.
MAX_TOKEN_SECONDS = 86400.0


def _now() -> float:
    """The clock token lifetimes are measured on (monotonic; tests replace it)."""
    return time.monotonic()


@dataclass(frozen=True)
class MaiaCredentials:
    """Where Maia is and who we are. Never printed with its secret."""

    base_url: str
    token_url: str
    client_id: str
    client_secret: str
    audience: str = DEFAULT_AUDIENCE

    def __repr__(self) -> str:  # never print the secret, even in a debugger or a traceback
        return (
            f"MaiaCredentials(base_url={redact_url(self.base_url)!r}, "
            f"token_url={redact_url(self.token_url)!r}, client_id={self.client_id!r}, client_secret=***)"
        )

    @property
    def cache_key(self) -> str:
        """Identifies the token's owner without keeping the secret itself as a dict key."""
        raw = "\0".join((self.token_url, self.audience, self.client_id, self.client_secret))
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float

    def __repr__(self) -> str:
        return f"_Token(***, refresh_at={self.refresh_at:.0f})"


class _TokenCache:
    """Bearer tokens per (token endpoint, client), shared by every hook in the process.

    A triggerer runs many Maia triggers, each with its own hook; one cache means one token
    request per client per half hour instead of one per trigger. Async fetches for one
    client are serialised per event loop, so a triggerer that starts a thousand triggers at
    once still asks for one token.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, key: str) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
        return token.value if token is not None and _now() < token.refresh_at else None

    def put(self, key: str, value: str, expires_in: float) -> None:
        margin = min(REFRESH_MARGIN_SECONDS, expires_in / 10)
        with self._lock:
            self._tokens[key] = _Token(value, _now() + expires_in - margin)

    def drop(self, key: str, value: str) -> None:
        """Forget a token the API refused, unless another caller already replaced it."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.value == value:
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def async_lock(self, key: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._lock:
            locks = self._async_locks.setdefault(loop, {})
            return locks.setdefault(key, asyncio.Lock())


tokens = _TokenCache()


class MaiaHook(HttpServiceHook[MaiaCredentials]):
    """
    Talks to the Maia (Matillion Data Productivity Cloud) public API with OAuth2 client credentials.

    The connection (type ``maia``): login = API client id, password = client secret, and in
    the extras either ``region`` (``eu1``, the default, or ``us1``) or ``base_url`` and
    ``token_url``, which override the region's URLs (e.g. to reach the local emulator).
    ``audience`` can be overridden too (default ``https://api.matillion.com``). Plain ``http``
    URLs are accepted for loopback hosts only, unless ``allow_plain_http`` is ``true``.

    :param maia_conn_id: the Airflow connection holding the client id and secret.
    :param timeout: seconds allowed for each HTTP call.
    :param retry_limit: attempts in all for a call that may be retried.
    :param retry_delay: first backoff in seconds (doubles each attempt, with jitter).
    :param retry_max_seconds: overall time after which a retried call gives up.
    """

    conn_name_attr = "maia_conn_id"
    default_conn_name = "maia_default"
    conn_type = "maia"
    hook_name = "Maia (Matillion DPC)"

    def __init__(
        self,
        maia_conn_id: str = default_conn_name,
        *,
        timeout: float = 30.0,
        retry_limit: int = 6,
        retry_delay: float = 1.0,
        retry_max_seconds: float = 300.0,
    ) -> None:
        super().__init__()
        self.maia_conn_id = maia_conn_id
        self.timeout = positive_seconds(timeout, "timeout")
        self.retry_policy = RetryPolicy(
            max_attempts=positive_count(retry_limit, "retry_limit"),
            base_delay=positive_seconds(retry_delay, "retry_delay"),
            max_total_seconds=positive_seconds(retry_max_seconds, "retry_max_seconds"),
        )
        self._creds = None
        self._session = None

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField

        return {
            "region": StringField(
                lazy_gettext("Region"),
                widget=BS3TextFieldWidget(),
                description="eu1 or us1: where your Maia account lives.",
            ),
            "base_url": StringField(
                lazy_gettext("API base URL (overrides region)"), widget=BS3TextFieldWidget()
            ),
            "token_url": StringField(
                lazy_gettext("Token URL (overrides the default)"), widget=BS3TextFieldWidget()
            ),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return MAIA_BEHAVIOUR

    # ------------------------------------------------------------------ credentials

    def _credentials_from(self, conn: Any, extras: Any) -> MaiaCredentials:
        if not isinstance(extras, Mapping):
            raise DuneConfigurationError(
                f"The extras of connection {self.maia_conn_id!r} must be a JSON object."
            )
        client_id = (conn.login or "").strip()
        secret = (conn.password or "").strip()
        if not client_id or not secret:
            raise DuneConfigurationError(
                f"The Airflow connection {self.maia_conn_id!r} needs the Maia API client id as its "
                "login and the client secret as its password (Maia > Profile & Account > API credentials)."
            )
        mask_secret(secret)
        extras = plain_extras(dict(extras), "maia")
        region = str(extras.get("region") or DEFAULT_REGION).strip().lower()
        base_url = str(extras.get("base_url") or "").strip()
        if not base_url:
            if region not in REGIONS:
                raise DuneConfigurationError(
                    f"The connection {self.maia_conn_id!r} has region {region!r}; Maia regions are "
                    f"{', '.join(REGIONS)}. Or set base_url and token_url in the extras."
                )
            base_url = BASE_URL_TEMPLATE.format(region=region)
        token_url = str(extras.get("token_url") or DEFAULT_TOKEN_URL).strip()
        for name, url in (("base_url", base_url), ("token_url", token_url)):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
                raise DuneConfigurationError(
                    f"The connection {self.maia_conn_id!r} has {name} {redact_url(url)!r}; it must be an "
                    "http(s) URL without a query string."
                )
            check_transport_security(url, name, self.maia_conn_id, allows_plain_http(extras))
        audience = str(extras.get("audience") or DEFAULT_AUDIENCE).strip()
        # Maia publishes no rate limits: its budget has no ceiling unless the extras set one, and
        # adapts to its 429s.
        self._use_budget(base_url.rstrip("/"), client_id, extras)
        return MaiaCredentials(base_url.rstrip("/"), token_url, client_id, secret, audience)

    def _missing_connection(self) -> DuneConfigurationError:
        return DuneConfigurationError(
            f"There is no Airflow connection {self.maia_conn_id!r}. Create it (Admin > Connections, "
            "type 'Maia', client id as login, secret as password) or set "
            f"AIRFLOW_CONN_{self.maia_conn_id.upper()}="
            '\'{"conn_type": "maia", "login": "<client id>", "password": "<secret>", '
            '"extra": {"region": "eu1"}}\'.'
        )

    def _conn_id(self) -> str:
        return self.maia_conn_id

    # ------------------------------------------------------------------ tokens

    def _token_request(self, creds: MaiaCredentials) -> dict[str, Any]:
        """The token request (a form POST, retried like a read), as keywords of ``_call``/``_acall``."""
        return {
            "method": "POST",
            "url": creds.token_url,
            # The identity service is not the API: its requests do not count against the API's budget.
            "budgeted": False,
            "headers": {"Accept": "application/json"},
            "interpret": partial(
                _interpret, method="POST", path=urlsplit(creds.token_url).path, starts_work=False
            ),
            "form": {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "audience": creds.audience,
            },
        }

    def _store_token(self, creds: MaiaCredentials, payload: Any) -> str:
        self.log.info("Fetched a Maia access token for client %s.", creds.client_id)
        value = payload.get("access_token") if isinstance(payload, Mapping) else None
        if not isinstance(value, str) or not value:
            raise MaiaResponseError("Maia's token endpoint answered without an access_token.")
        mask_secret(value)
        tokens.put(creds.cache_key, value, self._token_lifetime(payload.get("expires_in")))
        return value

    def _token_lifetime(self, expires_in: Any) -> float:
        """Seconds to keep a token: Maia's ``expires_in``, or the documented 30 minutes when it is
        missing or not a positive, finite number (NaN would never be fresh, inf never stale)."""
        if expires_in is None:
            return DEFAULT_TOKEN_SECONDS
        try:
            seconds = positive_seconds(expires_in, "expires_in")
        except DuneConfigurationError:
            self.log.warning(
                "Maia's token answer has expires_in=%s; keeping the token for the documented %.0f s.",
                log_safe(repr(expires_in)[:40]),
                DEFAULT_TOKEN_SECONDS,
            )
            return DEFAULT_TOKEN_SECONDS
        return min(seconds, MAX_TOKEN_SECONDS)

    def _token(self, creds: MaiaCredentials) -> str:
        cached = tokens.get(creds.cache_key)
        if cached is not None:
            return cached
        return self._store_token(creds, self._call(**self._token_request(creds)))

    async def _atoken(self, creds: MaiaCredentials) -> str:
        cached = tokens.get(creds.cache_key)
        if cached is not None:
            return cached
        async with tokens.async_lock(creds.cache_key):
            # Another trigger may have fetched it while this one waited for the lock.
            cached = tokens.get(creds.cache_key)
            if cached is not None:
                return cached
            return self._store_token(creds, await self._acall(**self._token_request(creds)))

    def _drop_refused_token(
        self, exc: MaiaApiError, creds: MaiaCredentials, token: str, last_try: bool
    ) -> None:
        """After a first 401, forget the token so that the next try fetches a new one; else raise."""
        if exc.status_code != 401 or last_try:
            raise exc
        # Revoked or expired early: a 401 is answered before any work, so one retry is safe.
        self.log.info("Maia refused the access token (HTTP 401); fetching a new one.")
        tokens.drop(creds.cache_key, token)

    # ------------------------------------------------------------------ requests

    def get_session(self) -> requests.Session:
        session = super().get_session()
        session.headers["User-Agent"] = USER_AGENT
        return session

    def _api_request(
        self,
        creds: MaiaCredentials,
        method: str,
        path: str,
        starts_work: bool,
        json_body: Any,
        urgent: bool = False,
    ) -> dict[str, Any]:
        """An API call as keywords of ``_call``/``_acall``, all but the (bearer token) headers."""
        return {
            "method": method,
            "url": creds.base_url + path,
            "interpret": partial(_interpret, method=method, path=path, starts_work=starts_work),
            "starts_work": starts_work,
            "urgent": urgent,
            "json_body": json_body,
        }

    def _request(
        self,
        method: str,
        path: str,
        *,
        starts_work: bool = False,
        json_body: Any = None,
        urgent: bool = False,
    ) -> Any:
        """One API call under the retry policy, with one fresh token after a 401."""
        creds = self._credentials()
        request = self._api_request(creds, method, path, starts_work, json_body, urgent)
        for last_try in (False, True):
            token = self._token(creds)
            try:
                return self._call(headers=_api_headers(token), **request)
            except MaiaApiError as exc:
                self._drop_refused_token(exc, creds, token, last_try)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _arequest(
        self,
        method: str,
        path: str,
        *,
        starts_work: bool = False,
        json_body: Any = None,
        urgent: bool = False,
    ) -> Any:
        """The async twin of :meth:`_request`, on the event loop's shared connection pool."""
        creds = await self._acredentials()
        request = self._api_request(creds, method, path, starts_work, json_body, urgent)
        for last_try in (False, True):
            token = await self._atoken(creds)
            try:
                return await self._acall(headers=_api_headers(token), **request)
            except MaiaApiError as exc:
                self._drop_refused_token(exc, creds, token, last_try)
        raise AssertionError("unreachable")  # pragma: no cover

    def _gave_up(self, error: Exception, attempts: int, elapsed: float) -> Exception:
        if isinstance(error, MaiaApiError):
            return MaiaApiError(
                error.status_code,
                error.title,
                f"{error.detail} (gave up after {attempts} attempts over {elapsed:.0f}s)".strip(),
                error.violations,
                method=error.method,
                path=error.path,
                may_have_started=error.may_have_started,
            )
        return MaiaResponseError(f"{error} Gave up after {attempts} attempts over {elapsed:.0f}s.")

    # ------------------------------------------------------------------ API: pipeline executions

    def start_pipeline(
        self,
        project_id: str,
        pipeline_name: str,
        environment_name: str,
        *,
        scalar_variables: Mapping[str, str] | None = None,
        grid_variables: Mapping[str, list[list[str]]] | None = None,
    ) -> str:
        """Start a published pipeline and return its ``pipelineExecutionId``.

        ``POST /v1/projects/{projectId}/pipeline-executions``. Retried only when Maia
        certainly did not start it (429, or no connection made).
        """
        path = f"/v1/projects/{_path_id(project_id)}/pipeline-executions"
        for name, argument in (("pipeline_name", pipeline_name), ("environment_name", environment_name)):
            if not isinstance(argument, str) or not argument.strip():
                raise DuneConfigurationError(f"{name} must be a non-empty string, got {argument!r}.")
        body: dict[str, Any] = {"pipelineName": pipeline_name, "environmentName": environment_name}
        if scalar_variables:
            body["scalarVariables"] = dict(scalar_variables)
        if grid_variables:
            body["gridVariables"] = dict(grid_variables)
        payload = self._request("POST", path, starts_work=True, json_body=body)
        value = payload.get("pipelineExecutionId") if isinstance(payload, Mapping) else None
        if not isinstance(value, str) or not value:
            raise MaiaResponseError(
                f"Maia accepted POST {path} but its answer has no 'pipelineExecutionId'; the pipeline "
                "may have started. Check the pipeline runs in Maia before re-running."
            )
        return value

    def get_pipeline_status(
        self, project_id: str, pipeline_execution_id: str, *, urgent: bool = False
    ) -> MaiaPipelineStatus:
        """``GET /v1/projects/{projectId}/pipeline-executions/{id}/status``; ``urgent`` (a cancel's
        read) never waits for the budget."""
        payload = self._request("GET", _status_path(project_id, pipeline_execution_id), urgent=urgent)
        return parse_pipeline_status(project_id, pipeline_execution_id, payload)

    async def aget_pipeline_status(
        self, project_id: str, pipeline_execution_id: str, *, urgent: bool = False
    ) -> MaiaPipelineStatus:
        payload = await self._arequest("GET", _status_path(project_id, pipeline_execution_id), urgent=urgent)
        return parse_pipeline_status(project_id, pipeline_execution_id, payload)

    def get_execution_details(self, project_id: str, pipeline_execution_id: str) -> MaiaExecutionDetails:
        """Why an execution ended as it did: its message
        (``GET /v1/projects/{projectId}/pipeline-executions/{id}``) and its failed steps
        (``GET .../steps``, the first page of up to ``STEPS_PAGE_SIZE`` steps)."""
        message, name = parse_execution_message(
            self._request("GET", _execution_path(project_id, pipeline_execution_id))
        )
        steps = parse_steps(
            self._request(
                "GET",
                _execution_path(project_id, pipeline_execution_id) + f"/steps?page=0&size={STEPS_PAGE_SIZE}",
            )
        )
        return MaiaExecutionDetails(message, name, tuple(step for step in steps if step.failed))

    def cancel_pipeline(self, project_id: str, pipeline_execution_id: str, *, force: bool = False) -> str:
        """Stop a running pipeline execution; returns its id.

        Maia's "Pipeline termination" call,
        https://docs.maia.ai/api-reference/pipeline-execution/pipeline-termination :
        ``PATCH /v1/projects/{projectId}/pipeline-executions/{pipelineExecutionId}`` with
        ``{"status": "CANCELLED", "forceUpdate": false}``. ``force=True`` sends
        ``forceUpdate: true``, which Maia documents as terminating the execution forcefully.
        Setting the same status twice changes nothing, so it is retried like a read.
        """
        payload = self._request(
            "PATCH",
            _execution_path(project_id, pipeline_execution_id),
            json_body=_cancel_body(force),
            urgent=True,
        )
        return _cancelled_id(payload, pipeline_execution_id)

    async def acancel_pipeline(
        self, project_id: str, pipeline_execution_id: str, *, force: bool = False
    ) -> str:
        payload = await self._arequest(
            "PATCH",
            _execution_path(project_id, pipeline_execution_id),
            json_body=_cancel_body(force),
            urgent=True,
        )
        return _cancelled_id(payload, pipeline_execution_id)

    # ------------------------------------------------------------------ connection test

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token and list one project: proves the credentials and the base URL."""
        try:
            with self._quick_retries():
                self._request("GET", "/v1/projects?size=1")
        except MaiaApiError as exc:
            if exc.status_code in (400, 401, 403):
                return False, f"Maia rejected the credentials (HTTP {exc.status_code}): {exc.message}"
            return False, str(exc)
        except Exception as exc:
            return False, str(exc)
        return True, "Connected to Maia: the client credentials were accepted."


def _interpret(reply: Reply, method: str, path: str, starts_work: bool) -> Any:
    """Decoded JSON of a good reply; :class:`Retryable` for anything else (the policy decides)."""
    if reply.status is None:
        error = MaiaApiError(
            None, reply.transport_error, method=method, path=path, may_have_started=starts_work and reply.sent
        )
        raise Retryable(error, reply)
    if reply.status >= 400:
        problem = parse_problem(reply.body, reply.content_type)
        error = MaiaApiError(
            reply.status,
            problem.title,
            problem.detail,
            problem.violations,
            method=method,
            path=path,
            may_have_started=starts_work and reply.status >= 500,
        )
        raise Retryable(error, reply)
    unusable = unusable_answer(reply)
    if unusable is not None:
        # Not retried: the same request would be redirected, or answered as big, again.
        raise MaiaApiError(
            reply.status,
            unusable,
            method=method,
            path=path,
            may_have_started=starts_work and reply.truncated,
        )
    try:
        return json.loads(reply.body)
    except ValueError:
        snippet = "an empty body" if not reply.body.strip() else f"{len(reply.body)} bytes that are not JSON"
        text = f"Maia API {method} {path} returned {snippet}."
        if starts_work:
            # Maia accepted the work but we cannot read its id: resubmitting could run it twice.
            raise MaiaResponseError(f"{text} The pipeline may have started; it was not retried.") from None
        # A garbled read is worth another try, like a 5xx.
        raise Retryable(MaiaResponseError(text), MALFORMED_BODY) from None


def _path_id(value: str) -> str:
    return path_id(value, "Maia")


def _api_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def _execution_path(project_id: str, pipeline_execution_id: str) -> str:
    return f"/v1/projects/{_path_id(project_id)}/pipeline-executions/{_path_id(pipeline_execution_id)}"


def _status_path(project_id: str, pipeline_execution_id: str) -> str:
    return _execution_path(project_id, pipeline_execution_id) + "/status"


def _cancel_body(force: bool) -> dict[str, Any]:
    if not isinstance(force, bool):
        raise DuneConfigurationError(f"force must be True or False, got {force!r}.")
    return {"status": "CANCELLED", "forceUpdate": force}


def _cancelled_id(payload: Any, pipeline_execution_id: str) -> str:
    value = payload.get("pipelineExecutionId") if isinstance(payload, Mapping) else None
    return value if isinstance(value, str) and value else pipeline_execution_id
