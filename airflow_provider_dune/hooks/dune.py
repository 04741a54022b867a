"""DuneHook: the Dune connection and every HTTP call this provider makes to Dune, sync and async.

The transport (one ``requests.Session`` per hook for sync calls, the event loop's shared
aiohttp pool for async ones, the retry loop) is :mod:`airflow_provider_dune.hooks.http`,
shared with the Maia hook; this module adds Dune's auth, URLs, error bodies and API calls.
The API key travels only in the ``X-Dune-Api-Key`` header of each request; it is registered
with Airflow's secret masker the moment it is read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

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
    allows_plain_http,
    check_transport_security,
    path_id,
    redact_url,
    unusable_answer,
)
from airflow_provider_dune.hooks.http import close_shared_async_session as close_shared_async_session
from airflow_provider_dune.hooks.http import shared_async_session as shared_async_session
from airflow_provider_dune.hooks.result_paging import (
    DEFAULT_RESULT_PAGE_ROWS,
    ResultOptions,
    next_page,
)
from airflow_provider_dune.hooks.retry import RetryPolicy
from airflow_provider_dune.models.dune import (
    ExecutionStatus,
    MaterializedView,
    PipelineStatus,
    QueryPipeline,
    ResultPage,
    ViewRefresh,
    ViewUpsert,
    check_cron_expression,
    check_full_view_name,
    check_short_view_name,
    parse_execution_status,
    parse_materialized_view,
    parse_materialized_view_page,
    parse_pipeline_status,
    parse_query_pipeline,
    parse_result_page,
    parse_view_refresh,
    parse_view_upsert,
)
from airflow_provider_dune.models.pipeline_spec import build_pipeline_request, performance_field
from airflow_provider_dune.validation import log_safe, positive_count, positive_seconds

DEFAULT_BASE_URL = "https://api.dune.com/api"
# Each can be set in the connection's extras (JSON) or as a hook argument.
DEFAULT_SETTINGS: dict[str, float] = {
    "timeout": 30.0,  # seconds for each HTTP call
    "retry_limit": 6,  # attempts in all for a call that may be retried
    "retry_delay": 1.0,  # first backoff in seconds, doubling with jitter
    "retry_max_seconds": 300.0,  # give up retrying after this long
}
_MAX_ERROR_TEXT = 300


@dataclass(frozen=True)
class _Credentials:
    base_url: str
    key: str

    def __repr__(self) -> str:  # never print the key, even in a debugger or a traceback
        return f"_Credentials(base_url={redact_url(self.base_url)!r}, key=***)"


ParsedT = TypeVar("ParsedT")

# CSV pages name the next page in these headers.
_NEXT_OFFSET_HEADER = "X-Dune-Next-Offset"
_NEXT_URI_HEADER = "X-Dune-Next-Uri"


def _error_text(body: bytes, content_type: str) -> str:
    """Dune's ``{"error": ...}`` message, or a short, safe description of whatever came back.

    Escaped for the log: an error text is written by the server, and a newline in it would
    start a line that looks like the task's own.
    """
    return log_safe(_raw_error_text(body, content_type))


def _raw_error_text(body: bytes, content_type: str) -> str:
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


def _latest_result_request(
    query_id: int | str, allow_partial_results: bool
) -> tuple[Any, str, dict[str, Any]]:
    """The checked query id, path and parameters of a one-row read of a query's latest result."""
    qid = build_pipeline_request(query_id=query_id)["query_id"]
    params = ResultOptions(allow_partial_results=allow_partial_results).first_params(None)
    return qid, f"/v1/query/{qid}/results", params


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
    with ``host=http://127.0.0.1:8089/api``. Plain ``http`` is accepted for loopback hosts
    only, unless the extras say ``"allow_plain_http": true``; redirects are never followed.

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
        self._last_status_reader: _StatusReader | None = None

    def _apply_settings(self, extras: Mapping[str, Any]) -> None:
        settings = dict(DEFAULT_SETTINGS)
        for name in settings:
            value = self._overrides[name]
            where = name
            if value is None:
                value = extras.get(name)
                where = f"{name} (in the extras of connection {self.dune_conn_id!r})"
            if value is None:
                continue
            check = positive_count if name == "retry_limit" else positive_seconds
            settings[name] = check(value, where)
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
                f"The connection {self.dune_conn_id!r} has host {redact_url(host)!r}, which is not an "
                "http(s) base URL. "
                f"Leave it empty for Dune ({DEFAULT_BASE_URL}) or give the full URL, e.g. "
                "http://127.0.0.1:8089/api for the local emulator."
            )
        if parts.query:
            raise DuneConfigurationError(
                f"The connection {self.dune_conn_id!r} has a base URL with a query string; remove it "
                "(the API key belongs in the password, never in a URL)."
            )
        check_transport_security(base_url, "host", self.dune_conn_id, allows_plain_http(extras))
        self._use_budget(base_url.rstrip("/"), key, extras)
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
        urgent: bool = False,
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
            # A copy: the cached headers serve every later JSON call of this hook.
            headers = {**headers, "Accept": "text/csv, */*"}
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
            urgent=urgent,
        )

    async def _arequest(
        self,
        method: str,
        path: str,
        *,
        starts_work: bool = False,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        urgent: bool = False,
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
            urgent=urgent,
        )

    def _read_status(
        self, path: str, item_id: str, parse: Callable[[str, Any], ParsedT], urgent: bool = False
    ) -> ParsedT:
        """``urgent``: the read a cancel needs, which must not wait behind polls for the budget."""
        creds = self._credentials()
        reader = self._status_reader(path, item_id, parse)
        return self._call("GET", creds.base_url + path, self._headers(creds), reader, urgent=urgent)  # type: ignore[no-any-return]

    async def _aread_status(
        self, path: str, item_id: str, parse: Callable[[str, Any], ParsedT], urgent: bool = False
    ) -> ParsedT:
        creds = await self._acredentials()
        reader = self._status_reader(path, item_id, parse)
        return await self._acall("GET", creds.base_url + path, self._headers(creds), reader, urgent=urgent)  # type: ignore[no-any-return]

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
        performance: str | None = None,
        query_parameters: Mapping[str, Any] | None = None,
    ) -> str:
        """Start a pipeline and return its ``pipeline_execution_id``.

        Either ``query_id`` (Dune builds the pipeline from the query's lineage) or ``nodes``
        (an explicit pipeline). ``performance`` (``medium`` or ``large``) is sent only when given;
        with ``nodes`` it is the tier of each node that sets none. The body is validated before
        anything is sent.
        """
        body = build_pipeline_request(
            query_id=query_id, nodes=nodes, performance=performance, query_parameters=query_parameters
        )
        payload = self._request("POST", "/v1/pipelines/execute", starts_work=True, json_body=body)
        return _started_id(payload, "pipeline_execution_id", "/v1/pipelines/execute")

    def get_pipeline_status(self, pipeline_execution_id: str, *, urgent: bool = False) -> PipelineStatus:
        """The pipeline's status; ``urgent`` (a cancel's read) never waits for the key's budget."""
        path = f"/v1/pipelines/executions/{_path_id(pipeline_execution_id)}/status"
        return self._read_status(path, pipeline_execution_id, parse_pipeline_status, urgent)

    async def aget_pipeline_status(
        self, pipeline_execution_id: str, *, urgent: bool = False
    ) -> PipelineStatus:
        path = f"/v1/pipelines/executions/{_path_id(pipeline_execution_id)}/status"
        return await self._aread_status(path, pipeline_execution_id, parse_pipeline_status, urgent)

    # ------------------------------------------------------------------ API: executions

    def get_execution_status(self, execution_id: str, *, urgent: bool = False) -> ExecutionStatus:
        """The execution's status; ``urgent`` (a cancel's read) never waits for the key's budget."""
        path = f"/v1/execution/{_path_id(execution_id)}/status"
        return self._read_status(path, execution_id, parse_execution_status, urgent)

    async def aget_execution_status(self, execution_id: str, *, urgent: bool = False) -> ExecutionStatus:
        path = f"/v1/execution/{_path_id(execution_id)}/status"
        return await self._aread_status(path, execution_id, parse_execution_status, urgent)

    def cancel_execution(self, execution_id: str) -> bool:
        """Cancel one execution; ``True`` when Dune confirms. Safe to repeat."""
        # Urgent: a cancel never waits behind polls for the key's budget.
        payload = self._request("POST", f"/v1/execution/{_path_id(execution_id)}/cancel", urgent=True)
        return bool(isinstance(payload, Mapping) and payload.get("success"))

    async def acancel_execution(self, execution_id: str) -> bool:
        payload = await self._arequest("POST", f"/v1/execution/{_path_id(execution_id)}/cancel", urgent=True)
        return bool(isinstance(payload, Mapping) and payload.get("success"))

    def execute_query(
        self,
        query_id: int | str,
        *,
        query_parameters: Mapping[str, Any] | None = None,
        performance: str | None = None,
    ) -> str:
        """Run a saved query (``POST /v1/query/{id}/execute``) and return its ``execution_id``.

        ``performance`` (``medium`` or ``large``) is sent only when given.
        """
        request = build_pipeline_request(
            query_id=query_id, performance=performance, query_parameters=query_parameters
        )
        path = f"/v1/query/{request.pop('query_id')}/execute"
        payload = self._request("POST", path, starts_work=True, json_body=request)
        return _started_id(payload, "execution_id", path)

    def execute_sql(self, sql: str, *, performance: str | None = None) -> str:
        """Run an ad-hoc SQL statement (``POST /v1/sql/execute``) and return its ``execution_id``."""
        if not isinstance(sql, str) or not sql.strip():
            raise DuneConfigurationError("sql must be a non-empty SQL statement.")
        body = {"sql": sql, **performance_field(performance)}
        payload = self._request("POST", "/v1/sql/execute", starts_work=True, json_body=body)
        return _started_id(payload, "execution_id", "/v1/sql/execute")

    # ------------------------------------------------------------------ API: results

    def get_result_page(self, execution_id: str, *, limit: int = 1000, offset: int = 0) -> ResultPage:
        """One page of an execution's result rows (JSON), ``limit`` rows from ``offset``."""
        positive_count(limit, "limit")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise DuneConfigurationError(f"offset must be a whole number of rows, 0 or more, got {offset!r}.")
        payload = self._request(
            "GET",
            f"/v1/execution/{_path_id(execution_id)}/results",
            params={"limit": limit, "offset": offset},
        )
        return parse_result_page(execution_id, payload)

    def iter_result_pages(
        self,
        execution_id: str,
        *,
        columns: Sequence[str] | None = None,
        filters: str | None = None,
        sort_by: str | Sequence[str] | None = None,
        page_size: int = DEFAULT_RESULT_PAGE_ROWS,
        allow_partial_results: bool = False,
        ignore_max_datapoints_per_request: bool = False,
        sample_count: int | None = None,
        exact_numbers: bool = False,
    ) -> Iterator[ResultPage]:
        """Every page of an execution's JSON result, one request per page, read lazily.

        Pages hold ``page_size`` rows at most, and no more than Dune's 250,000 datapoints
        (rows x columns) allow unless ``ignore_max_datapoints_per_request``; the column count
        comes from the execution's status (read once, or reused when this hook just read it).
        Follows ``next_uri`` when it points back at the connection's base URL (never sending the
        key anywhere else), else ``next_offset``. Only one page is held at a time. The options
        are those of :class:`~airflow_provider_dune.hooks.result_paging.ResultOptions`.

        :param exact_numbers: fractional JSON numbers become :class:`~decimal.Decimal` with every
            digit Dune sent, instead of ``float`` (integers are exact either way).
        """
        options = ResultOptions(
            columns,
            filters,
            sort_by,
            page_size,
            allow_partial_results,
            ignore_max_datapoints_per_request,
            sample_count,
        )
        path = f"/v1/execution/{_path_id(execution_id)}/results"
        column_count = self._column_count(execution_id, options)
        yield from self._json_pages(execution_id, path, options, column_count, exact_numbers)

    def iter_results(
        self,
        execution_id: str,
        *,
        columns: Sequence[str] | None = None,
        filters: str | None = None,
        sort_by: str | Sequence[str] | None = None,
        page_size: int = DEFAULT_RESULT_PAGE_ROWS,
        allow_partial_results: bool = False,
        ignore_max_datapoints_per_request: bool = False,
        sample_count: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every row of an execution's result, read page by page as :meth:`iter_result_pages` does.

        :param columns: only these columns (Dune's ``columns`` parameter).
        :param filters: a SQL-like ``WHERE`` fragment applied by Dune, e.g. ``"block_number > 100"``.
        :param sort_by: ``"col desc"`` or a list of them.
        :param page_size: rows per request at most (Dune's ``limit``).
        :param allow_partial_results: read a truncated (``COMPLETED_PARTIAL``) result.
        :param ignore_max_datapoints_per_request: lift Dune's 250,000 datapoints per request.
        :param sample_count: a random sample of this many rows instead of the whole result.
        """
        for page in self.iter_result_pages(
            execution_id,
            columns=columns,
            filters=filters,
            sort_by=sort_by,
            page_size=page_size,
            allow_partial_results=allow_partial_results,
            ignore_max_datapoints_per_request=ignore_max_datapoints_per_request,
            sample_count=sample_count,
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
        ignore_max_datapoints_per_request: bool = False,
        sample_count: int | None = None,
    ) -> Iterator[bytes]:
        """The result as CSV, one chunk per page: the header line once, then each page's rows.

        The chunks joined are one valid CSV file. Pages are sized as in :meth:`iter_result_pages`
        and followed through Dune's ``X-Dune-Next-Uri`` / ``X-Dune-Next-Offset`` headers.
        """
        options = ResultOptions(
            columns,
            filters,
            sort_by,
            page_size,
            allow_partial_results,
            ignore_max_datapoints_per_request,
            sample_count,
        )
        path = f"/v1/execution/{_path_id(execution_id)}/results/csv"
        yield from self._csv_pages(path, options, self._column_count(execution_id, options))

    # ------------------------------------------------------------------ API: a query's latest result

    def get_latest_result(self, query_id: int | str, *, allow_partial_results: bool = False) -> ResultPage:
        """What Dune holds as a query's latest result, without running it (no execution credits).

        One row of it (``GET /v1/query/{query_id}/results?limit=1``): the page's ``execution_id``,
        ``state``, ``execution_ended_at`` and ``total_row_count`` say which execution it is, when it
        ended and how big it is. Dune answers 404 (:class:`~airflow_provider_dune.exceptions.DuneApiError`)
        for a query that never ran.
        """
        qid, path, params = _latest_result_request(query_id, allow_partial_results)
        return parse_result_page(f"(latest result of query {qid})", self._request("GET", path, params=params))

    async def aget_latest_result(
        self, query_id: int | str, *, allow_partial_results: bool = False
    ) -> ResultPage:
        """The async twin of :meth:`get_latest_result`, for a trigger waiting for a fresh result."""
        qid, path, params = _latest_result_request(query_id, allow_partial_results)
        payload = await self._arequest("GET", path, params=params)
        return parse_result_page(f"(latest result of query {qid})", payload)

    def iter_latest_result_pages(
        self,
        query_id: int | str,
        *,
        columns: Sequence[str] | None = None,
        filters: str | None = None,
        sort_by: str | Sequence[str] | None = None,
        page_size: int = DEFAULT_RESULT_PAGE_ROWS,
        allow_partial_results: bool = False,
        ignore_max_datapoints_per_request: bool = False,
        sample_count: int | None = None,
    ) -> Iterator[ResultPage]:
        """Every page of a query's latest result (``GET /v1/query/{query_id}/results``), lazily.

        Like :meth:`iter_result_pages`, without running the query. Unless ``columns`` says how wide
        the result is, the first page is a single row whose metadata sizes the rest; Dune's
        ``next_uri`` then continues on the execution that produced the result, so a new run of
        the query meanwhile does not mix two results. Each page names that ``execution_id``.
        """
        options = ResultOptions(
            columns,
            filters,
            sort_by,
            page_size,
            allow_partial_results,
            ignore_max_datapoints_per_request,
            sample_count,
        )
        qid = build_pipeline_request(query_id=query_id)["query_id"]
        path = f"/v1/query/{qid}/results"
        yield from self._json_pages(f"(latest result of query {qid})", path, options, options.column_count)

    def iter_latest_results(self, query_id: int | str, **options: Any) -> Iterator[dict[str, Any]]:
        """Every row of a query's latest result; the options of :meth:`iter_latest_result_pages`."""
        for page in self.iter_latest_result_pages(query_id, **options):
            yield from page.rows

    def iter_latest_results_csv(
        self,
        query_id: int | str,
        *,
        columns: Sequence[str] | None = None,
        filters: str | None = None,
        sort_by: str | Sequence[str] | None = None,
        page_size: int = DEFAULT_RESULT_PAGE_ROWS,
        allow_partial_results: bool = False,
        ignore_max_datapoints_per_request: bool = False,
        sample_count: int | None = None,
    ) -> Iterator[bytes]:
        """A query's latest result as CSV (``GET /v1/query/{query_id}/results/csv``), as
        :meth:`iter_results_csv` reads an execution's; the first page's header sizes the rest."""
        options = ResultOptions(
            columns,
            filters,
            sort_by,
            page_size,
            allow_partial_results,
            ignore_max_datapoints_per_request,
            sample_count,
        )
        qid = build_pipeline_request(query_id=query_id)["query_id"]
        yield from self._csv_pages(f"/v1/query/{qid}/results/csv", options, options.column_count)

    # ------------------------------------------------------------------ paging

    def _column_count(self, execution_id: str, options: ResultOptions) -> int | None:
        """How wide an execution's result is: the chosen columns, or its status's column names
        (the status this hook read last when it was this execution's, so no second read)."""
        if (
            options.column_count is not None
            or options.sample_count
            or options.ignore_max_datapoints_per_request
        ):
            return options.column_count
        reader = self._last_status_reader
        status = reader.parsed if reader is not None and reader.item_id == execution_id else None
        if not isinstance(status, ExecutionStatus) or status.metadata is None:
            status = self.get_execution_status(execution_id)
        names = status.metadata.column_names if status.metadata else ()
        return len(names) or None

    def _json_pages(
        self,
        execution_id: str,
        path: str,
        options: ResultOptions,
        column_count: int | None,
        exact_numbers: bool = False,
    ) -> Iterator[ResultPage]:
        params = options.first_params(column_count)
        while True:
            payload = self._request("GET", path, params=params, exact_numbers=exact_numbers)
            page = parse_result_page(execution_id, payload)
            yield page
            if options.sample_count is not None or (page.next_offset is None and page.next_uri is None):
                return
            column_count = column_count or len(page.column_names) or None
            path, params = next_page(
                self._credentials().base_url,
                path,
                params,
                page.next_offset,
                page.next_uri,
                options.rows_per_page(column_count),
                self.log.warning,
            )

    def _csv_pages(self, path: str, options: ResultOptions, column_count: int | None) -> Iterator[bytes]:
        params = options.first_params(column_count)
        first = True
        while True:
            reply: Reply = self._request("GET", path, params=params, raw=True)
            header, _, rows = reply.body.partition(b"\n")
            if first:
                # Every page repeats the header line; keep only the first.
                column_count = column_count or _csv_width(header)
                rows = reply.body
            if rows:
                yield rows if rows.endswith(b"\n") else rows + b"\n"
            first = False
            next_offset = _opt_int_header(reply.headers.get(_NEXT_OFFSET_HEADER))
            next_uri = reply.headers.get(_NEXT_URI_HEADER)
            if options.sample_count is not None or (next_offset is None and not next_uri):
                return
            path, params = next_page(
                self._credentials().base_url,
                path,
                params,
                next_offset,
                next_uri,
                options.rows_per_page(column_count),
                self.log.warning,
            )

    # ------------------------------------------------------------------ API: query pipelines

    def get_query_pipeline(self, query_id: int | str) -> QueryPipeline:
        """The pipeline Dune would run for a query: its upstream views, then the query."""
        qid = build_pipeline_request(query_id=query_id)["query_id"]
        return parse_query_pipeline(qid, self._request("GET", f"/v1/query/{qid}/pipeline"))

    def execute_query_pipeline(
        self,
        query_id: int | str,
        *,
        performance: str | None = None,
        query_parameters: Mapping[str, Any] | None = None,
    ) -> str:
        """Run a query's predefined pipeline (``POST /v1/query/{id}/pipeline/execute``).

        This endpoint requires a tier: ``performance`` defaults to Dune's default, ``medium``.
        """
        request = build_pipeline_request(
            query_id=query_id, performance=performance or "medium", query_parameters=query_parameters
        )
        path = f"/v1/query/{request.pop('query_id')}/pipeline/execute"
        payload = self._request("POST", path, starts_work=True, json_body=request)
        return _started_id(payload, "pipeline_execution_id", path)

    # ------------------------------------------------------------------ API: materialized views

    def list_materialized_views(self, *, page_size: int = 100) -> list[MaterializedView]:
        """Every materialized view the key's account owns, following ``next_offset``."""
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
        """One view by its full name ``dune.<team>.result_<name>`` (Dune answers a short name 404)."""
        full = check_full_view_name(name)
        return parse_materialized_view(self._request("GET", f"/v1/materialized-views/{_path_id(full)}"))

    def upsert_materialized_view(
        self,
        name: str,
        query_id: int | str,
        *,
        performance: str | None = None,
        cron_expression: str | None = None,
        is_private: bool | None = None,
        expires_at: str | None = None,
    ) -> ViewUpsert:
        """Create the view ``dune.<your team>.<name>`` from a query, or update it; Dune then
        refreshes it at once.

        :param name: the short name, ``result_<name>``: Dune creates views only in the key's own
            namespace, so a full name is refused before any request.
        :param performance: tier of its refreshes, ``medium`` or ``large`` (Dune's default when unset).
        :param cron_expression: a refresh schedule, 5 fields (every 15 minutes to weekly).
        :return: the refresh this started (``execution_id``) and the view's full ``name``.

        The upsert starts work, so it is never resent after a failure that may have reached Dune.
        """
        body: dict[str, Any] = {
            "name": check_short_view_name(name),
            "query_id": build_pipeline_request(query_id=query_id)["query_id"],
            **performance_field(performance),
        }
        if cron_expression is not None:
            body["cron_expression"] = check_cron_expression(cron_expression)
        if is_private is not None:
            body["is_private"] = is_private
        if expires_at is not None:
            body["expires_at"] = expires_at
        payload = self._request("POST", "/v1/materialized-views", starts_work=True, json_body=body)
        return parse_view_upsert(name, payload)

    def delete_materialized_view(self, name: str) -> bool:
        """Delete a view by its full name; ``True`` once Dune confirmed."""
        full = check_full_view_name(name)
        self._request("DELETE", f"/v1/materialized-views/{_path_id(full)}")
        return True

    def refresh_materialized_view(self, name: str, *, performance: str | None = None) -> ViewRefresh:
        """Start rebuilding a view (short or full name); the answer names the execution that does
        it and the view's full name."""
        path = f"/v1/materialized-views/{_path_id(name)}/refresh"
        body = performance_field(performance)
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
    unusable = unusable_answer(reply)
    if unusable is not None:
        # Not retried: the same request would be redirected, or answered as big, again.
        raise DuneApiError(
            reply.status, unusable, method=method, path=path, may_have_started=starts_work and reply.truncated
        )
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
        if reply.status == 200 and reply.body == self.body and not reply.truncated:
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
    if reply.status is None or reply.status >= 300 or reply.truncated:
        _interpret(reply, method, path, starts_work)  # always raises for these
    return reply


def _csv_width(header: bytes) -> int | None:
    """Columns named by a CSV header line (a quoted name may hold a comma)."""
    row = next(csv.reader([header.decode(errors="replace")]), [])
    return len(row) or None


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
