"""Materialized views: upsert (starts a refresh), list, read, delete, refresh.

Names, as Dune's API takes them: the upsert takes the short name ``result_<name>`` (the view
is always created in the caller's namespace ``dune.<team>``); read and delete take the full
name ``dune.<team>.result_<name>`` and answer 404 to a short one; a refresh takes either.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from airflow_provider_dune.emulator.catalog import CatalogError, ViewConflict, ViewDef
from airflow_provider_dune.emulator.http_support import (
    ApiError,
    json_body,
    json_response,
    query_int,
    state_of,
)
from airflow_provider_dune.emulator.routes_executions import performance_of, require_credits
from airflow_provider_dune.emulator.state import EmulatorState

_SHORT_NAME = re.compile(r"^result_[a-z0-9_]+$")
_CRON_FIELDS = 5
# Dune's default and largest page of the list.
_MAX_LIST_LIMIT = 10_000


def _short_name(state: EmulatorState, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "name (string) is required")
    lowered = name.strip().lower()
    if lowered.startswith("dune."):
        if not state.catalog.owns(lowered):
            raise ApiError(
                400,
                f"cannot create materialized view {name}: views can only be created in your own "
                f"namespace dune.{state.catalog.team}; give the name without a namespace, e.g. result_x",
            )
        lowered = lowered.split(".", 2)[2]
    if not _SHORT_NAME.match(lowered):
        raise ApiError(
            400,
            f"invalid materialized view name {name!r}: it must start with result_ (e.g. result_daily_volume)",
        )
    return lowered


def _optional(body: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise ApiError(400, f"{key} must be {what}")
    return value


def _refresh(state: EmulatorState, view: ViewDef, performance: str) -> str:
    query = state.catalog.queries[view.query_id]
    require_credits(state, [performance])
    try:
        sql = query.sql_for_run(None)
    except CatalogError as exc:
        raise ApiError(400, str(exc)) from exc
    execution = state.executions.submit(
        view.query_id,
        sql,
        performance,
        query.execution_seconds,
        materialize_view=view.name,
    )
    view.record_execution(execution.execution_id)
    return execution.execution_id


async def upsert_view(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    short = _short_name(state, body.get("name"))
    query_id = body.get("query_id")
    if isinstance(query_id, bool) or not isinstance(query_id, int):
        raise ApiError(400, "query_id (integer) is required")
    if query_id not in state.catalog.queries:
        raise ApiError(404, f"query {query_id} not found")
    cron = _optional(body, "cron_expression", str, "a string")
    if cron is not None and len(cron.split()) != _CRON_FIELDS:
        raise ApiError(
            400, f"cron_expression must have 5 fields (minute hour day month weekday), got {cron!r}"
        )
    _optional(body, "expires_at", str, "a string")
    is_private = _optional(body, "is_private", bool, "a boolean")
    performance = performance_of(body)
    try:
        view = state.catalog.upsert_view(short, query_id, performance, bool(is_private), cron)
    except ViewConflict as exc:
        raise ApiError(409, str(exc)) from exc
    return json_response({"execution_id": _refresh(state, view, performance), "name": view.name})


async def list_views(request: web.Request) -> web.Response:
    views = [view.to_list_element() for view in state_of(request).catalog.views.values()]
    offset = query_int(request, "offset", 0) or 0
    limit = min(query_int(request, "limit", _MAX_LIST_LIMIT, minimum=1) or _MAX_LIST_LIMIT, _MAX_LIST_LIMIT)
    body: dict[str, object] = {"materialized_views": views[offset : offset + limit]}
    if offset + limit < len(views):
        body["next_offset"] = offset + limit
    return json_response(body)


def _view_by_full_name(request: web.Request) -> ViewDef:
    state = state_of(request)
    name = request.match_info["name"].strip().lower()
    if name.startswith("dune.") and not state.catalog.owns(name):
        raise ApiError(403, f"not allowed to access materialized view {name}: it belongs to another team")
    view = state.catalog.views.get(name)
    if view is None:
        raise ApiError(404, f"materialized view {request.match_info['name']} not found")
    return view


async def read_view(request: web.Request) -> web.Response:
    return json_response(_view_by_full_name(request).to_api())


async def delete_view(request: web.Request) -> web.Response:
    state = state_of(request)
    view = _view_by_full_name(request)
    del state.catalog.views[view.name]
    await state.engine.call(state.engine.drop_view, view.name)
    return json_response({"message": f"materialized view {view.name} deleted"})


async def refresh_view(request: web.Request) -> web.Response:
    state = state_of(request)
    name = request.match_info["name"]
    view = state.catalog.find_view(name)
    if view is None or not state.catalog.owns(view.name):
        raise ApiError(404, f"materialized view {name} not found")
    body = await json_body(request, allow_empty=True)
    performance = performance_of(body) if body.get("performance") else view.performance
    return json_response({"execution_id": _refresh(state, view, performance), "sql_id": view.name})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/materialized-views", upsert_view)
    app.router.add_get("/api/v1/materialized-views", list_views)
    app.router.add_get("/api/v1/materialized-views/{name}", read_view)
    app.router.add_delete("/api/v1/materialized-views/{name}", delete_view)
    app.router.add_post("/api/v1/materialized-views/{name}/refresh", refresh_view)
