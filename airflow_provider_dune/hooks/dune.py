"""DuneHook: the Dune connection and every HTTP call this provider makes to Dune, sync and async.

The transport (one ``requests.Session`` per hook for sync calls, the event loop's shared
aiohttp pool for async ones, the retry loop) is :mod:`airflow_provider_dune.hooks.http`,
shared with the Maia hook; this module adds Dune's auth, URLs, error bodies and API calls.
The API key travels only in the ``X-Dune-Api-Key`` header of each request; it is registered
with Airflow's secret masker the moment it is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urljoin, urlsplit

from airflow.providers.common.compat.sdk import mask_secret

from airflow_provider_dune.connection_forms import DUNE_BEHAVIOUR, plain_extras
from airflow_provider_dune.exceptions import DuneApiError, DuneConfigurationError, DuneResponseError

# `X as X`: re-exported, callers import these from here (the transport moved to hooks.http).
from airflow_provider_dune.hooks.http import ASYNC_POOL_SIZE as ASYNC_POOL_SIZE
from airflow_provider_dune.hooks.http import (
    MALFORMED_BODY,
    USER_AGENT,
    HttpServiceHook,
    Reply,
    Retryable,
    path_id,
)
from airflow_provider_dune.hooks.http import close_shared_async_session as close_shared_async_session
from airflow_provider_dune.hooks.http import shared_async_session as shared_async_session
from airflow_provider_dune.hooks.retry import RetryPolicy
from airflow_provider_dune.models.dune import (
    ExecutionStatus,
    MaterializedView,
    PipelineStatus,
    QueryPipeline,
    ResultPage,
    ViewRefresh,
    parse_execution_status,
    parse_materialized_view,
    parse_materialized_view_page,
    parse_pipeline_status,
    parse_query_pipeline,
    parse_result_page,
    parse_view_refresh,
)
from airflow_provider_dune.models.pipeline_spec import build_pipeline_request, check_performance

DEFAULT_BASE_URL = "https://api.dune.com/api"
# Each can be set in the connection's extras (JSON) or as a hook argument.
DEFAULT_SETTINGS: dict[str, float] = {
    "timeout": 30.0,  # seconds for each HTTP call
    "retry_limit": 6,  # attempts in all for a call that may be retried
    "retry_delay": 1.0,  # first backoff in seconds, doubling with jitter
    "retry_max_seconds": 300.0,  # give up retrying after this long
}
_MAX_ERROR_TEXT = 300
# Rows per results request; the official client uses the same page size.
DEFAULT_RESULT_PAGE_ROWS = 32_000


@dataclass(frozen=True)
class _Credentials:
    base_url: str
    key: str

    def __repr__(self) -> str:  # never print the key, even in a debugger or a traceback
        return f"_Credentials(base_url={self.base_url!r}, key=***)"


ParsedT = TypeVar("ParsedT")

# CSV pages name the next page in these headers.
_NEXT_OFFSET_HEADER = "X-Dune-Next-Offset"
_NEXT_URI_HEADER = "X-Dune-Next-Uri"


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


def _decode_json(body: bytes, method: str, path: str, exact_numbers: bool = False) -> Any:
    try:
        # Decimal keeps every digit of a fractional number; float would round a decimal(38,18).
        return json.loads(body, parse_float=Decimal) if exact_numbers else json.loads(body)
    except ValueError:
        snippet = "empty body" if not body.strip() else f"{len(body)} bytes that are not JSON"
        raise DuneResponseError(f"Dune API {method} {path} returned {snippet}.") from None


class DuneHook(HttpServiceHook[_Credentials]):
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
        timeout: float | None = None,
        retry_limit: int | None = None,
        retry_delay: float | None = None,
        retry_max_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.dune_conn_id = dune_conn_id
        # Hook arguments win over the connection's extras, which win over these defaults.
        self._overrides = {
            "timeout": timeout,
            "retry_limit": retry_limit,
            "retry_delay": retry_delay,
            "retry_max_seconds": retry_max_seconds,
        }
        self._apply_settings({})
        self._creds = None
        self._session = None
        # 429 answers seen by this hook; the polling loop stretches its interval when it grows.
        self.rate_limited_count = 0
        self._last_status_reader: _StatusReader | None = None

    def _apply_settings(self, extras: Mapping[str, Any]) -> None:
        settings = dict(DEFAULT_SETTINGS)
        for name in settings:
            value = self._overrides[name] if self._overrides[name] is not None else extras.get(name)
            if value is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise DuneConfigurationError(
                    f"The connection {self.dune_conn_id!r} sets {name}={value!r} in its extras; "
                    "it must be a number."
                ) from None
            if number < 0 or (name in ("timeout", "retry_limit") and number <= 0):
                raise DuneConfigurationError(f"{name} must be positive, got {value!r}.")
            settings[name] = number
        self.timeout = settings["timeout"]
        self.retry_policy = RetryPolicy(
            max_attempts=int(settings["retry_limit"]),
            base_delay=settings["retry_delay"],
            max_total_seconds=settings["retry_max_seconds"],
        )

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return DUNE_BEHAVIOUR

    # ------------------------------------------------------------------ credentials

    def _conn_id(self) -> str:
        return self.dune_conn_id

    def _credentials_from(self, conn: Any, extras: Any) -> _Credentials:
        extras = _extras(conn, extras)
        self._apply_settings(extras)
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
        return _Credentials(base_url=base_url.rstrip("/"), key=key)

    def _missing_connection(self) -> DuneConfigurationError:
        return DuneConfigurationError(
            f"There is no Airflow connection {self.dune_conn_id!r}. Create it in the UI (Admin > "
            "Connections, type 'Dune', API key as the password) or set "
            f'AIRFLOW_CONN_{self.dune_conn_id.upper()}=\'{{"conn_type": "dune", "password": "<key>"}}\'.'
        )

    def _gave_up(self, error: Exception, attempts: int, elapsed: float) -> Exception:
        if isinstance(error, DuneApiError):
            return DuneApiError(
                error.status_code,
                f"{error.message} (gave up after {attempts} attempts over {elapsed:.0f}s)",
                method=error.method,
                path=error.path,
                may_have_started=error.may_have_started,
            )
        return DuneResponseError(f"{error} Gave up after {attempts} attempts over {elapsed:.0f}s.")

    def _headers(self, creds: _Credentials) -> dict[str, str]:
        # Built once per hook: a trigger polls with the same headers for hours.
        headers: dict[str, str] | None = getattr(self, "_header_cache", None)
        if headers is None:
            headers = {
                "X-Dune-Api-Key": creds.key,
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
            self._header_cache = headers
        return headers

    # ------------------------------------------------------------------ requests

    def _request(
        self,
        method: str,
        path: str,
        *,
        starts_work: bool = False,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        raw: bool = False,
        exact_numbers: bool = False,
    ) -> Any:
        """Send one API call under the retry policy; return the decoded JSON body.

        ``raw=True`` returns the good reply undecoded (:class:`~airflow_provider_dune.hooks.http.Reply`:
        body and next-page headers), for the CSV results endpoint. ``exact_numbers=True`` decodes
        fractional JSON numbers as :class:`~decimal.Decimal`.
        """
        creds = self._credentials()
        headers = self._headers(creds)
        if raw:
            headers["Accept"] = "text/csv, */*"
        return self._call(
            method,
            creds.base_url + path,
            headers,
            partial(_check_raw, method=method, path=path, starts_work=starts_work)
            if raw
            else partial(
                _interpret, method=method, path=path, starts_work=starts_work, exact_numbers=exact_numbers
            ),
            starts_work=starts_work,
            json_body=json_body,
            params=params,
            keep_headers=(_NEXT_OFFSET_HEADER, _NEXT_URI_HEADER) if raw else (),
        )

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
        return await self._acall(
            method,
            creds.base_url + path,
            self._headers(creds),
            partial(_interpret, method=method, path=path, starts_work=starts_work),
            starts_work=starts_work,
            json_body=json_body,
            params=params,
        )

    def _read_status(self, path: str, item_id: str, parse: Callable[[str, Any], ParsedT]) -> ParsedT:
        creds = self._credentials()
        reader = self._status_reader(path, item_id, parse)
        return self._call("GET", creds.base_url + path, self._headers(creds), reader)  # type: ignore[no-any-return]

    async def _aread_status(self, path: str, item_id: str, parse: Callable[[str, Any], ParsedT]) -> ParsedT:
        creds = await self._acredentials()
        reader = self._status_reader(path, item_id, parse)
        return await self._acall("GET", creds.base_url + path, self._headers(creds), reader)  # type: ignore[no-any-return]

    def _status_reader(self, path: str, item_id: str, parse: Callable[[str, Any], Any]) -> _StatusReader:
        # A waiting task reads one path for its whole life: keep its reader (and last parse).
        reader = self._last_status_reader
        if reader is None or reader.path != path:
            reader = self._last_status_reader = _StatusReader(path, item_id, parse)
        return reader

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
        path = f"/v1/pipelines/executions/{_path_id(pipeline_execution_id)}/status"
        return self._read_status(path, pipeline_execution_id, parse_pipeline_status)

    async def aget_pipeline_status(self, pipeline_execution_id: str) -> PipelineStatus:
        path = f"/v1/pipelines/executions/{_path_id(pipeline_execution_id)}/status"
        return await self._aread_status(path, pipeline_execution_id, parse_pipeline_status)

    # ------------------------------------------------------------------ API: executions

    def get_execution_status(self, execution_id: str) -> ExecutionStatus:
        path = f"/v1/execution/{_path_id(execution_id)}/status"
        return self._read_status(path, execution_id, parse_execution_status)

    async def aget_execution_status(self, execution_id: str) -> ExecutionStatus:
        path = f"/v1/execution/{_path_id(execution_id)}/status"
        return await self._aread_status(path, execution_id, parse_execution_status)

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

    def execute_query(
        self,
        query_id: int | str,
        *,
        query_parameters: Mapping[str, Any] | None = None,
        performance: str = "medium",
    ) -> str:
        """Run a saved query (``POST /v1/query/{id}/execute``) and return its ``execution_id``."""
        request = build_pipeline_request(
            query_id=query_id, performance=performance, query_parameters=query_parameters
        )
        path = f"/v1/query/{request.pop('query_id')}/execute"
        payload = self._request("POST", path, starts_work=True, json_body=request)
        return _started_id(payload, "execution_id", path)

    def execute_sql(self, sql: str, *, performance: str = "medium") -> str:
        """Run an ad-hoc SQL statement (``POST /v1/sql/execute``) and return its ``execution_id``."""
        if not isinstance(sql, str) or not sql.strip():
            raise DuneConfigurationError("sql must be a non-empty SQL statement.")
        body = {"sql": sql, "performance": check_performance(performance)}
        payload = self._request("POST", "/v1/sql/execute", starts_work=True, json_body=body)
        return _started_id(payload, "execution_id", "/v1/sql/execute")

    def iter_result_pages(
        self,
        execution_id: str,
        *,
        columns: Sequence[str] | None = None,
        filters: str | None = None,
        sort_by: str | Sequence[str] | None = None,
        page_size: int = DEFAULT_RESULT_PAGE_ROWS,
        allow_partial_results: bool = False,
        exact_numbers: bool = False,
    ) -> Iterator[ResultPage]:
        """Every page of an execution's JSON result, one request per page, read lazily.

        Follows ``next_uri`` when it points back at the connection's base URL (never sending the
        key anywhere else), else ``next_offset``. Only one page is held at a time.

        :param exact_numbers: fractional JSON numbers become :class:`~decimal.Decimal` with every
            digit Dune sent, instead of ``float`` (integers are exact either way).
        """
        path = f"/v1/execution/{_path_id(execution_id)}/results"
        params: dict[str, Any] | None = _result_params(
            columns, filters, sort_by, page_size, allow_partial_results
        )
        while params is not None:
            payload = self._request("GET", path, params=params, exact_numbers=exact_numbers)
            page = parse_result_page(execution_id, payload)
            yield page
            if page.next_offset is None and page.next_uri is None:
                return
            path, params = self._next_page(path, params, page.next_offset, page.next_uri)

    def iter_results(
        self,
        execution_id: str,
        *,
        columns: Sequence[str] | None = None,
        filters: str | None = None,
        sort_by: str | Sequence[str] | None = None,
        page_size: int = DEFAULT_RESULT_PAGE_ROWS,
        allow_partial_results: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every row of an execution's result, fetched ``page_size`` rows at a time.

        :param columns: only these columns (Dune's ``columns`` parameter).
        :param filters: a SQL-like ``WHERE`` fragment applied by Dune, e.g. ``"block_number > 100"``.
        :param sort_by: ``"col desc"`` or a list of them.
        :param page_size: rows per request (Dune's ``limit``).
        :param allow_partial_results: read a truncated (``COMPLETED_PARTIAL``) result.
        """
        for page in self.iter_result_pages(
            execution_id,
            columns=columns,
            filters=filters,
            sort_by=sort_by,
            page_size=page_size,
            allow_partial_results=allow_partial_results,
        ):
            yield from page.rows

    def iter_results_csv(
        self,
        execution_id: str,
        *,
        columns: Sequence[str] | None = None,
        filters: str | None = None,
        sort_by: str | Sequence[str] | None = None,
        page_size: int = DEFAULT_RESULT_PAGE_ROWS,
        allow_partial_results: bool = False,
    ) -> Iterator[bytes]:
        """The result as CSV, one chunk per page: the header line once, then each page's rows.

        The chunks joined are one valid CSV file. Pages are followed through Dune's
        ``X-Dune-Next-Uri`` / ``X-Dune-Next-Offset`` headers.
        """
        path = f"/v1/execution/{_path_id(execution_id)}/results/csv"
        params: dict[str, Any] | None = _result_params(
            columns, filters, sort_by, page_size, allow_partial_results
        )
        first = True
        while params is not None:
            reply: Reply = self._request("GET", path, params=params, raw=True)
            body = reply.body
            if not first:
                # Every page repeats the header line; keep only the first.
                body = body.split(b"\n", 1)[1] if b"\n" in body else b""
            if body:
                yield body if body.endswith(b"\n") else body + b"\n"
            first = False
            next_offset = _opt_int_header(reply.headers.get(_NEXT_OFFSET_HEADER))
            next_uri = reply.headers.get(_NEXT_URI_HEADER)
            if next_offset is None and not next_uri:
                return
            path, params = self._next_page(path, params, next_offset, next_uri)

    def _next_page(
        self, path: str, params: dict[str, Any], next_offset: int | None, next_uri: str | None
    ) -> tuple[str, dict[str, Any]]:
        if next_uri:
            followed = _same_origin(self._credentials().base_url, next_uri)
            if followed is not None:
                return followed
            self.log.warning(
                "Dune's next_uri points away from the connection's base URL; paging by offset instead."
            )
        if next_offset is None or next_offset <= int(params.get("offset", 0)):
            raise DuneResponseError(
                f"Dune's results page for {path} names no usable next page (next_offset={next_offset})."
            )
        return path, {**params, "offset": next_offset}

    # ------------------------------------------------------------------ API: query pipelines

    def get_query_pipeline(self, query_id: int | str) -> QueryPipeline:
        """The pipeline Dune would run for a query: its upstream views, then the query."""
        qid = build_pipeline_request(query_id=query_id)["query_id"]
        return parse_query_pipeline(qid, self._request("GET", f"/v1/query/{qid}/pipeline"))

    def execute_query_pipeline(
        self,
        query_id: int | str,
        *,
        performance: str = "medium",
        query_parameters: Mapping[str, Any] | None = None,
    ) -> str:
        """Run a query's predefined pipeline (``POST /v1/query/{id}/pipeline/execute``)."""
        request = build_pipeline_request(
            query_id=query_id, performance=performance, query_parameters=query_parameters
        )
        path = f"/v1/query/{request.pop('query_id')}/pipeline/execute"
        payload = self._request("POST", path, starts_work=True, json_body=request)
        return _started_id(payload, "pipeline_execution_id", path)

    # ------------------------------------------------------------------ API: materialized views

    def list_materialized_views(self, *, page_size: int = 100) -> list[MaterializedView]:
        """Every materialized view the key can see, following ``next_offset``."""
        views: list[MaterializedView] = []
        offset = 0
        while True:
            page = parse_materialized_view_page(
                self._request("GET", "/v1/materialized-views", params={"limit": page_size, "offset": offset})
            )
            views.extend(page.views)
            if page.next_offset is None or page.next_offset <= offset or not page.views:
                return views
            offset = page.next_offset

    def get_materialized_view(self, name: str) -> MaterializedView:
        return parse_materialized_view(self._request("GET", f"/v1/materialized-views/{_path_id(name)}"))

    def upsert_materialized_view(
        self,
        name: str,
        query_id: int | str,
        *,
        performance: str = "medium",
        cron_expression: str | None = None,
        is_private: bool | None = None,
    ) -> MaterializedView:
        """Create the view, or change the query, tier or schedule of an existing one."""
        body: dict[str, Any] = {
            "name": _path_id(name),
            "query_id": build_pipeline_request(query_id=query_id)["query_id"],
            "performance": check_performance(performance),
        }
        if cron_expression:
            body["cron_expression"] = cron_expression
        if is_private is not None:
            body["is_private"] = is_private
        # The same body twice leaves the same view: safe under the read retry policy.
        return parse_materialized_view(self._request("POST", "/v1/materialized-views", json_body=body))

    def delete_materialized_view(self, name: str) -> bool:
        payload = self._request("DELETE", f"/v1/materialized-views/{_path_id(name)}")
        return bool(isinstance(payload, Mapping) and payload.get("success", True))

    def refresh_materialized_view(self, name: str, *, performance: str | None = None) -> ViewRefresh:
        """Start rebuilding a view; the answer names the execution that does it."""
        body = {"performance": check_performance(performance)} if performance else {}
        path = f"/v1/materialized-views/{_path_id(name)}/refresh"
        return parse_view_refresh(name, self._request("POST", path, starts_work=True, json_body=body))

    # ------------------------------------------------------------------ connection test

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call: list at most one materialized view."""
        try:
            self._credentials()
        except Exception as exc:
            return False, str(exc)
        try:
            with self._quick_retries():
                self._request("GET", "/v1/materialized-views", params={"limit": 1})
        except DuneApiError as exc:
            if exc.status_code in (401, 403):
                return False, f"Dune rejected the API key (HTTP {exc.status_code}): {exc.message}"
            return False, str(exc)
        except Exception as exc:
            return False, str(exc)
        return True, "Connected to Dune: the API key was accepted."


def _interpret(reply: Reply, method: str, path: str, starts_work: bool, exact_numbers: bool = False) -> Any:
    """Decoded JSON of a good reply; :class:`Retryable` for anything else (the policy decides)."""
    if reply.status is None:
        raise Retryable(
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
        raise Retryable(error, reply)
    try:
        return _decode_json(reply.body, method, path, exact_numbers)
    except DuneResponseError as exc:
        if starts_work:
            # Dune accepted the work but we cannot read its id: resubmitting could run it twice.
            raise DuneResponseError(
                f"{exc} The request may have started work on Dune; it was not retried."
            ) from None
        # A garbled read is worth another try, like a 5xx.
        raise Retryable(exc, MALFORMED_BODY) from None


class _StatusReader:
    """``interpret`` for one status path: parse a good body, or reuse the last parse of the same bytes.

    A waiting task reads the same status every few seconds for as long as the run lasts, and
    Dune answers with identical bytes until something changes. Parsing them again would cost
    more CPU than the request itself, and leave new objects alive between polls for the
    garbage collector to walk; comparing the bytes costs next to nothing. The parsed models
    are frozen, so handing the same one out again is safe.
    """

    __slots__ = ("body", "item_id", "parse", "parsed", "path")

    def __init__(self, path: str, item_id: str, parse: Callable[[str, Any], Any]) -> None:
        self.path = path
        self.item_id = item_id
        self.parse = parse
        self.body: bytes | None = None
        self.parsed: Any = None

    def __call__(self, reply: Reply) -> Any:
        if reply.status == 200 and reply.body == self.body:
            return self.parsed
        parsed = self.parse(self.item_id, _interpret(reply, "GET", self.path, False))
        self.body, self.parsed = reply.body, parsed
        return parsed


def _extras(conn: Any, extras: Any) -> Mapping[str, Any]:
    if not isinstance(extras, Mapping):
        raise DuneConfigurationError(
            f"The extras of connection {conn.conn_id!r} must be a JSON object, got {type(extras).__name__}."
        )
    return plain_extras(dict(extras), "dune")


def _check_raw(reply: Reply, method: str, path: str, starts_work: bool) -> Reply:
    """A good reply as it came (CSV pages); errors go through :func:`_interpret`'s rules."""
    if reply.status is None or reply.status >= 400:
        _interpret(reply, method, path, starts_work)  # always raises for these
    return reply


def _result_params(
    columns: Sequence[str] | None,
    filters: str | None,
    sort_by: str | Sequence[str] | None,
    page_size: int,
    allow_partial_results: bool,
) -> dict[str, Any]:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size <= 0:
        raise DuneConfigurationError(f"page_size must be a positive number of rows, got {page_size!r}.")
    params: dict[str, Any] = {"limit": page_size, "offset": 0}
    if columns:
        params["columns"] = columns if isinstance(columns, str) else ",".join(columns)
    if filters:
        params["filters"] = filters
    if sort_by:
        params["sort_by"] = sort_by if isinstance(sort_by, str) else ",".join(sort_by)
    if allow_partial_results:
        params["allow_partial_results"] = "true"
    return params


def _same_origin(base_url: str, uri: str) -> tuple[str, dict[str, Any]] | None:
    """``next_uri`` as (path under the base URL, params), or ``None`` when it points elsewhere.

    The key is sent with every request, so a URI on another host is never followed; any
    ``api_key`` parameter in it is dropped.
    """
    base, target = urlsplit(base_url), urlsplit(urljoin(base_url + "/", uri))
    prefix = base.path.rstrip("/")
    if (target.scheme, target.netloc) != (base.scheme, base.netloc) or not target.path.startswith(
        prefix + "/"
    ):
        return None
    params = {k: v for k, v in parse_qsl(target.query, keep_blank_values=True) if k != "api_key"}
    return target.path[len(prefix) :], params


def _opt_int_header(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _path_id(value: str) -> str:
    return path_id(value, "Dune")


def _started_id(payload: Any, field: str, path: str) -> str:
    value = payload.get(field) if isinstance(payload, Mapping) else None
    if not isinstance(value, str) or not value:
        raise DuneResponseError(
            f"Dune accepted POST {path} but its answer has no {field!r}; the work may have started. "
            "Check the Dune UI before re-running."
        )
    return value
