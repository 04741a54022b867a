"""How the hook pages through a Dune result: the query parameters of each request, how many
rows a page may hold, and where the next page is. No I/O here: the
:class:`~airflow_provider_dune.hooks.dune.DuneHook` sends the requests.

Dune refuses a page of more than 250,000 datapoints (rows x columns) unless the request sets
``ignore_max_datapoints_per_request``, so a page holds at most ``250,000 // columns`` rows. When
the column count is not known before the first request (a query's latest result), the first
page is one row: its metadata (or its CSV header) gives the count for the rest, the way the
official client reads a latest result's metadata first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

from airflow_provider_dune.exceptions import DuneConfigurationError, DuneResponseError
from airflow_provider_dune.validation import log_safe

# Rows per results request; the official client uses the same page size.
DEFAULT_RESULT_PAGE_ROWS = 32_000
# Dune's default guard: a request may return at most this many datapoints (rows x columns).
MAX_DATAPOINTS_PER_REQUEST = 250_000


@dataclass(frozen=True)
class ResultOptions:
    """What the caller asked of a result, checked before any request.

    :param columns: only these columns (Dune's ``columns``).
    :param filters: a SQL-like ``WHERE`` fragment applied by Dune, e.g. ``"block_number > 100"``.
    :param sort_by: ``"col desc"`` or a list of them.
    :param page_size: the most rows one request asks for; fewer when the datapoint limit says so.
    :param allow_partial_results: read a truncated (``COMPLETED_PARTIAL``) result.
    :param ignore_max_datapoints_per_request: lift Dune's 250,000-datapoint limit per request
        (pages of ``page_size`` rows, whatever their width; each datapoint costs credits).
    :param sample_count: a uniform random sample of this many rows, in one request; Dune does not
        combine it with ``filters`` or paging.
    """

    columns: Sequence[str] | str | None = None
    filters: str | None = None
    sort_by: Sequence[str] | str | None = None
    page_size: int = DEFAULT_RESULT_PAGE_ROWS
    allow_partial_results: bool = False
    ignore_max_datapoints_per_request: bool = False
    sample_count: int | None = None

    def __post_init__(self) -> None:
        for name in ("page_size", "sample_count"):
            value = getattr(self, name)
            if value is None and name == "sample_count":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise DuneConfigurationError(f"{name} must be a positive number of rows, got {value!r}.")
        if self.sample_count is not None and self.filters:
            raise DuneConfigurationError(
                "sample_count cannot be combined with filters (Dune samples the whole result); "
                "drop one of them."
            )

    @property
    def column_count(self) -> int | None:
        """Known before any request when the caller chose the columns."""
        if not self.columns:
            return None
        return len(self.columns.split(",")) if isinstance(self.columns, str) else len(self.columns)

    def rows_per_page(self, column_count: int | None) -> int:
        """Rows for the next request: ``page_size`` within the datapoint limit; one row while the
        width is still unknown."""
        if self.ignore_max_datapoints_per_request:
            return self.page_size
        if not column_count:
            return 1
        return max(1, min(self.page_size, MAX_DATAPOINTS_PER_REQUEST // column_count))

    def first_params(self, column_count: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.columns:
            params["columns"] = self.columns if isinstance(self.columns, str) else ",".join(self.columns)
        if self.filters:
            params["filters"] = self.filters
        if self.sort_by:
            params["sort_by"] = self.sort_by if isinstance(self.sort_by, str) else ",".join(self.sort_by)
        if self.allow_partial_results:
            params["allow_partial_results"] = "true"
        if self.ignore_max_datapoints_per_request:
            params["ignore_max_datapoints_per_request"] = "true"
        if self.sample_count is not None:
            params["sample_count"] = self.sample_count
        else:
            params.update(limit=self.rows_per_page(column_count), offset=0)
        return params


def next_page(
    base_url: str,
    path: str,
    params: dict[str, Any],
    next_offset: int | None,
    next_uri: str | None,
    limit: int,
    warn: Callable[[str], None],
) -> tuple[str, dict[str, Any]]:
    """``(path, params)`` of the next request.

    ``next_uri`` is followed when it points under ``base_url``; otherwise (``warn`` says so) the
    next page is read by ``next_offset``. The request's own parameters (``allow_partial_results``,
    ``sort_by``...) carry over unless the URI sets them; ``limit`` is always ours, since the
    first page may have been a one-row probe. The next page must start further on: a server that
    names the same page again (or an earlier one) would otherwise be read forever.
    """
    offset = _offset_of(params)
    if next_uri:
        followed = _same_origin(base_url, next_uri)
        if followed is None:
            warn("Dune's next_uri points away from the connection's base URL; paging by offset instead.")
        else:
            uri_path, uri_params = followed
            following = {**params, **uri_params, "limit": limit}
            if _offset_of(following) > offset:
                return uri_path, following
    if next_offset is None or next_offset <= offset:
        raise DuneResponseError(
            f"Dune's results page for {path} at offset {offset} names no next page that starts "
            f"further on (next_offset={next_offset}, next_uri={log_safe(str(next_uri))!r}); stopped "
            "paging instead of reading the same rows again."
        )
    return path, {**params, "offset": next_offset, "limit": limit}


def _offset_of(params: dict[str, Any]) -> int:
    """The ``offset`` of a results request; -1 when absent or not a whole number."""
    try:
        return int(params.get("offset", -1))
    except (TypeError, ValueError):
        return -1


def _same_origin(base_url: str, uri: str) -> tuple[str, dict[str, Any]] | None:
    """``next_uri`` as (path under the base URL, params), or ``None`` when it points elsewhere.

    The key is sent with every request, so a URI on another host is never followed; any
    ``api_key`` parameter in it is dropped.
    """
    base, target = urlsplit(base_url), urlsplit(urljoin(base_url + "/", uri))
    prefix = base.path.rstrip("/")
    if (
        (target.scheme, target.netloc) != (base.scheme, base.netloc)
        or not target.path.startswith(prefix + "/")
        # An encoded dot segment (%2e%2e) survives urljoin; a server may resolve it out of the prefix.
        or any(segment in (".", "..") for segment in unquote(target.path).split("/"))
    ):
        return None
    params = {k: v for k, v in parse_qsl(target.query, keep_blank_values=True) if k != "api_key"}
    return target.path[len(prefix) :], params
