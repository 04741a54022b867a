"""Serving stored results in pages as JSON or CSV, in the shapes of Dune's results endpoints."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from aiohttp import web

from airflow_provider_dune.emulator.executions import COMPLETED_PARTIAL, Execution
from airflow_provider_dune.emulator.http_support import ApiError, query_int
from airflow_provider_dune.emulator.sql_engine import Page, SqlEngine, SqlJob

# Without ``limit`` Dune returns everything up to a size cap; this row cap plays that role and
# keeps an unpaged request for a million-row result from building one giant response.
DEFAULT_PAGE_ROWS = 100_000
# The most rows one page holds, whatever ``limit`` (or ``sample_count``) asks: a page is built
# in memory, so a limit of a billion must not mean a billion rows. The page then says where the
# next one starts, as any page does.
MAX_PAGE_ROWS = 250_000
# A page of more datapoints (rows x columns) is refused unless the request sets
# ignore_max_datapoints_per_request=true: Dune's guard against spending all credits in one call.
MAX_DATAPOINTS_PER_REQUEST = 250_000


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int
    columns: list[str] | None
    filters: str | None
    sort_by: str | None
    sample_count: int | None
    ignore_max_datapoints: bool = False


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() == "true"


def parse_page_request(request: web.Request, execution: Execution) -> PageRequest:
    if execution.state == COMPLETED_PARTIAL and not _flag(request, "allow_partial_results"):
        raise ApiError(
            400,
            "the result of this execution is partial (too large); set allow_partial_results=true to fetch it",
        )
    sample_count = query_int(request, "sample_count", None, minimum=1)
    if sample_count is not None and any(name in request.query for name in ("limit", "offset", "filters")):
        raise ApiError(400, "sample_count cannot be combined with limit, offset or filters")
    limit = query_int(request, "limit", DEFAULT_PAGE_ROWS, minimum=1)
    offset = query_int(request, "offset", 0)
    columns_param = request.query.get("columns")
    columns = [name.strip() for name in columns_param.split(",") if name.strip()] if columns_param else None
    known = execution.result.column_names if execution.result else []
    unknown = [name for name in columns or [] if name not in known]
    if unknown:
        raise ApiError(400, f"unknown columns: {', '.join(unknown)}")
    sample_count = query_int(request, "sample_count", None, minimum=1)
    return PageRequest(
        limit=min(sample_count or limit or DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS),
        offset=offset or 0,
        columns=columns,
        filters=request.query.get("filters") or None,
        sort_by=request.query.get("sort_by") or None,
        sample_count=None if sample_count is None else min(sample_count, MAX_PAGE_ROWS),
        ignore_max_datapoints=_flag(request, "ignore_max_datapoints_per_request"),
    )


async def fetch_page(engine: SqlEngine, execution: Execution, page: PageRequest) -> Page:
    """The rows asked for; refused (400) when they are more datapoints than one request may carry."""
    assert execution.result is not None
    width = len(page.columns or execution.result.column_names) or 1
    allowed_rows = MAX_DATAPOINTS_PER_REQUEST // width
    limit = page.limit if page.ignore_max_datapoints else min(page.limit, allowed_rows + 1)
    try:
        result = await engine.call_capped(
            SqlJob(),
            engine.page,
            execution.result.table,
            page.columns,
            limit,
            page.offset,
            page.filters,
            page.sort_by,
            page.sample_count,
        )
    except Exception as exc:  # a bad filters/sort_by fragment is the client's mistake, not ours
        raise ApiError(400, f"invalid results request: {exc}") from exc
    if not page.ignore_max_datapoints and len(result.rows) > allowed_rows:
        raise ApiError(
            400,
            f"this request would return more than {MAX_DATAPOINTS_PER_REQUEST:,} datapoints (rows x "
            f"columns; {width} columns allow {allowed_rows:,} rows); request fewer rows with limit or "
            "fewer columns, or set ignore_max_datapoints_per_request=true",
        )
    return result


def next_offset(page: PageRequest, result: Page) -> int | None:
    if page.sample_count is not None:
        return None
    following = page.offset + len(result.rows)
    return following if following < result.total_row_count and result.rows else None


def next_uri(request: web.Request, origin: str, offset: int, path: str | None = None) -> str:
    """The following page on the emulator's own address (``origin``), never the request's Host
    header, keeping the caller's paging options but never an api_key; on ``path`` when given
    (the latest result's pages continue on its execution's results)."""
    params = {key: value for key, value in request.query.items() if key not in ("api_key", "offset")}
    params["offset"] = str(offset)
    return origin + (path if path is not None else request.rel_url.raw_path) + "?" + urlencode(params)


# A decimal's digits travel through json.dumps as a marked string, then lose the quotes and the
# mark (_dumps): the json module has no way to write a number it did not format itself.
_EXACT_MARK = "\x00exact:"
_EXACT_STRING = re.compile(r'"\\u0000exact:(-?[0-9]+(?:\.[0-9]+)?)"')


def _dumps(value: Any) -> str:
    return _EXACT_STRING.sub(r"\1", json.dumps(value))


def json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        moment = value.astimezone(timezone.utc) if value.tzinfo else value
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        # Dune sends a decimal(p,s) as a JSON number with all its digits; a float would keep 17.
        return _EXACT_MARK + format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    return str(value)


def json_page_body(execution: Execution, result: Page, offset: int | None, uri: str | None) -> bytes:
    """CPU-bound for big pages: the caller runs it off the event loop."""
    names = result.column_names
    rows = [{name: json_value(value) for name, value in zip(names, row, strict=True)} for row in result.rows]
    metadata = execution.result_metadata(row_count=len(rows)) or {}
    metadata.update(
        column_names=names, column_types=result.column_types, total_row_count=result.total_row_count
    )
    body: dict[str, Any] = {**execution.to_results_envelope(), "result": {"rows": rows, "metadata": metadata}}
    if offset is not None and uri is not None:
        body["next_offset"] = offset
        body["next_uri"] = uri
    return _dumps(body).encode()


def csv_page_body(result: Page) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.column_names)
    for row in result.rows:
        writer.writerow(["" if value is None else _csv_value(value) for value in row])
    return buffer.getvalue().encode()


def _csv_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    converted = json_value(value)
    return _dumps(converted) if isinstance(converted, list | dict) else converted
