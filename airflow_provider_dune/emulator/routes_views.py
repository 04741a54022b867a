"""Materialized views: upsert, list, read, delete, refresh."""

from __future__ import annotations

from aiohttp import web

from airflow_provider_dune.emulator.catalog import CatalogError, ViewDef
from airflow_provider_dune.emulator.http_support import (
    ApiError,
    json_body,
    json_response,
    query_int,
    state_of,
)
from airflow_provider_dune.emulator.routes_executions import performance_of


async def upsert_view(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    name, query_id = body.get("name"), body.get("query_id")
    if not isinstance(name, str) or isinstance(query_id, bool) or not isinstance(query_id, int):
        raise ApiError(400, "name (string) and query_id (integer) are required")
    try:
        view = state.catalog.upsert_view(name, query_id, performance_of(body))
    except CatalogError as exc:
        raise ApiError(400, str(exc)) from exc
    return json_response(view.to_api())


async def list_views(request: web.Request) -> web.Response:
    views = [view.to_api() for view in state_of(request).catalog.views.values()]
    offset = query_int(request, "offset", 0) or 0
    limit = query_int(request, "limit", len(views), minimum=1) or len(views)
    body: dict[str, object] = {"materialized_views": views[offset : offset + limit]}
    if offset + limit < len(views):
        body["next_offset"] = offset + limit
    return json_response(body)


def _view(request: web.Request) -> ViewDef:
    name = request.match_info["name"]
    view = state_of(request).catalog.find_view(name)
    if view is None:
        raise ApiError(404, f"materialized view {name} not found")
    return view


async def read_view(request: web.Request) -> web.Response:
    return json_response(_view(request).to_api())


async def delete_view(request: web.Request) -> web.Response:
    state = state_of(request)
    view = _view(request)
    del state.catalog.views[view.name]
    await state.engine.call(state.engine.drop_view, view.name)
    return json_response({"success": True})


async def refresh_view(request: web.Request) -> web.Response:
    state = state_of(request)
    view = _view(request)
    body = await json_body(request, allow_empty=True)
    performance = performance_of(body) if body.get("performance") else view.performance
    query = state.catalog.queries[view.query_id]
    try:
        sql = query.render_sql(None)
    except CatalogError as exc:
        raise ApiError(400, str(exc)) from exc
    execution = state.executions.submit(
        view.query_id, sql, performance, query.execution_seconds, materialize_view=view.name
    )
    view.last_execution_id = execution.execution_id
    return json_response(
        {"execution_id": execution.execution_id, "name": view.name, "state": execution.state}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/materialized-views", upsert_view)
    app.router.add_get("/api/v1/materialized-views", list_views)
    app.router.add_get("/api/v1/materialized-views/{name}", read_view)
    app.router.add_delete("/api/v1/materialized-views/{name}", delete_view)
    app.router.add_post("/api/v1/materialized-views/{name}/refresh", refresh_view)
