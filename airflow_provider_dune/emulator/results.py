"""Serving stored results in pages as JSON or CSV, in the shapes of Dune's results endpoints."""

from __future__ import annotations

import csv
import io
import json
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


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int
    columns: list[str] | None
    filters: str | None
    sort_by: str | None
    sample_count: int | None


def parse_page_request(request: web.Request, execution: Execution) -> PageRequest:
    if (
        execution.state == COMPLETED_PARTIAL
        and request.query.get("allow_partial_results", "").lower() != "true"
    ):
        raise ApiError(
            400,
            "the result of this execution is partial (too large); set allow_partial_results=true to fetch it",
        )
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
        limit=min(limit or DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS),
        offset=offset or 0,
        columns=columns,
        filters=request.query.get("filters") or None,
        sort_by=request.query.get("sort_by") or None,
        sample_count=None if sample_count is None else min(sample_count, MAX_PAGE_ROWS),
    )


async def fetch_page(engine: SqlEngine, execution: Execution, page: PageRequest) -> Page:
    assert execution.result is not None
    try:
        return await engine.call_capped(
            SqlJob(),
            engine.page,
            execution.result.table,
            page.columns,
            page.limit,
            page.offset,
            page.filters,
            page.sort_by,
            page.sample_count,
        )
    except Exception as exc:  # a bad filters/sort_by fragment is the client's mistake, not ours
        raise ApiError(400, f"invalid results request: {exc}") from exc


def next_offset(page: PageRequest, result: Page) -> int | None:
    following = page.offset + len(result.rows)
    return following if following < result.total_row_count and result.rows else None


def next_uri(request: web.Request, origin: str, offset: int) -> str:
    """The following page on the emulator's own address (``origin``), never the request's Host
    header, keeping the caller's paging options but never an api_key."""
    params = {key: value for key, value in request.query.items() if key not in ("api_key", "offset")}
    params["offset"] = str(offset)
    return origin + request.rel_url.raw_path + "?" + urlencode(params)


def json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        moment = value.astimezone(timezone.utc) if value.tzinfo else value
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
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
    body: dict[str, Any] = {
        "execution_id": execution.execution_id,
        "query_id": execution.query_id,
        "is_execution_finished": True,
        "state": execution.state,
        **execution.timing_fields(),
        "result": {"rows": rows, "metadata": metadata},
    }
    if offset is not None and uri is not None:
        body["next_offset"] = offset
        body["next_uri"] = uri
    return json.dumps(body).encode()


def csv_page_body(result: Page) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.column_names)
    for row in result.rows:
        writer.writerow(["" if value is None else _csv_value(value) for value in row])
    return buffer.getvalue().encode()


def _csv_value(value: Any) -> Any:
    converted = json_value(value)
    return json.dumps(converted) if isinstance(converted, list | dict) else converted
