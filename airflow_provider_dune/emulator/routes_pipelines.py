"""Pipelines: execute (lineage or explicit nodes), the query's predefined pipeline, status."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_provider_dune.emulator.catalog import CatalogError
from airflow_provider_dune.emulator.http_support import ApiError, json_body, json_response, path_int, state_of
from airflow_provider_dune.emulator.pipeline_specs import (
    NodeSpec,
    PipelineSpecError,
    lineage_nodes,
    parse_explicit_nodes,
)
from airflow_provider_dune.emulator.pipelines import render_nodes
from airflow_provider_dune.emulator.routes_executions import require_credits
from airflow_provider_dune.emulator.state import EmulatorState


def _start(state: EmulatorState, specs: list[NodeSpec]) -> web.Response:
    try:
        nodes = render_nodes(state.catalog, specs)
    except CatalogError as exc:
        raise ApiError(400, str(exc)) from exc
    require_credits(state, [spec.performance for spec in specs])
    run = state.pipelines.start(nodes)
    return json_response({"pipeline_execution_id": run.pipeline_execution_id})


def _lineage(state: EmulatorState, query_id: Any, body: dict[str, Any]) -> list[NodeSpec]:
    if isinstance(query_id, bool) or not isinstance(query_id, int):
        raise ApiError(400, "query_id must be an integer")
    try:
        return lineage_nodes(state.catalog, query_id, body.get("performance"), body.get("query_parameters"))
    except (CatalogError, PipelineSpecError) as exc:
        raise ApiError(400, str(exc)) from exc


async def execute_pipeline(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    if "pipeline" in body:
        try:
            specs = parse_explicit_nodes(state.catalog, body["pipeline"])
        except PipelineSpecError as exc:
            raise ApiError(400, str(exc)) from exc
    elif "query_id" in body:
        specs = _lineage(state, body["query_id"], body)
    else:
        raise ApiError(400, "request body needs either query_id or pipeline.nodes")
    return _start(state, specs)


async def query_pipeline(request: web.Request) -> web.Response:
    state = state_of(request)
    query_id = path_int(request, "query_id")
    if query_id not in state.catalog.queries:
        raise ApiError(404, f"query {query_id} not found")
    specs = _lineage(state, query_id, {})
    return json_response({"pipeline": {"nodes": [spec.to_api() for spec in specs]}})


async def execute_query_pipeline(request: web.Request) -> web.Response:
    state = state_of(request)
    query_id = path_int(request, "query_id")
    if query_id not in state.catalog.queries:
        raise ApiError(404, f"query {query_id} not found")
    body = await json_body(request, allow_empty=True)
    return _start(state, _lineage(state, query_id, body))


async def pipeline_status(request: web.Request) -> web.Response:
    pipeline_execution_id = request.match_info["pipeline_execution_id"]
    run = state_of(request).pipelines.get(pipeline_execution_id)
    if run is None:
        raise ApiError(404, f"pipeline execution {pipeline_execution_id} not found")
    return json_response(run.to_status())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/pipelines/execute", execute_pipeline)
    app.router.add_get("/api/v1/pipelines/executions/{pipeline_execution_id}/status", pipeline_status)
    app.router.add_get("/api/v1/query/{query_id}/pipeline", query_pipeline)
    app.router.add_post("/api/v1/query/{query_id}/pipeline/execute", execute_query_pipeline)
