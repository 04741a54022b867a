"""Single query executions: execute, status, results (JSON and CSV), cancel; and a query's
latest result (``/v1/query/{id}/results``), served from its most recent finished execution."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_provider_dune.emulator.catalog import PERFORMANCE_TIERS, CatalogError
from airflow_provider_dune.emulator.executions import CREDIT_LIMIT_MESSAGE, RESULT_STATES, Execution
from airflow_provider_dune.emulator.http_support import ApiError, json_body, json_response, path_int, state_of
from airflow_provider_dune.emulator.results import (
    csv_page_body,
    fetch_page,
    json_page_body,
    next_offset,
    next_uri,
    parse_page_request,
)
from airflow_provider_dune.emulator.state import EmulatorState

# Ad-hoc SQL has no saved query behind it.
AD_HOC_QUERY_ID = 0
# Dune's words for a query the key may not run.
NOT_ALLOWED_TO_EXECUTE = "Not allowed to execute query. Query is archived, unsaved or not enough permissions"


def performance_of(body: dict[str, Any]) -> str:
    """The requested engine tier; Dune's default when the request names none."""
    performance = body.get("performance")
    if performance is None:
        return "medium"
    if performance not in PERFORMANCE_TIERS:
        raise ApiError(400, f"performance must be one of {', '.join(PERFORMANCE_TIERS)}, got {performance!r}")
    return str(performance)


def require_credits(state: EmulatorState, performances: list[str]) -> None:
    """402 before any work when the executions would pass the account's credit limit."""
    if not state.executions.can_afford(performances):
        raise ApiError(402, CREDIT_LIMIT_MESSAGE)


def query_parameters_of(body: dict[str, Any]) -> dict[str, Any]:
    parameters = body.get("query_parameters") or {}
    if not isinstance(parameters, dict):
        raise ApiError(400, "query_parameters must be an object")
    return parameters


def _submitted(execution: Execution) -> web.Response:
    return json_response({"execution_id": execution.execution_id, "state": execution.state})


async def execute_query(request: web.Request) -> web.Response:
    state = state_of(request)
    query_id = path_int(request, "query_id")
    body = await json_body(request, allow_empty=True)
    query = state.catalog.queries.get(query_id)
    if query is None:
        raise ApiError(404, f"query {query_id} not found")
    if query.is_archived:
        raise ApiError(403, NOT_ALLOWED_TO_EXECUTE)
    performance = performance_of(body)
    try:
        sql = query.sql_for_run(query_parameters_of(body))
    except CatalogError as exc:
        raise ApiError(400, str(exc)) from exc
    require_credits(state, [performance])
    return _submitted(state.executions.submit(query_id, sql, performance, query.execution_seconds))


async def execute_sql(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise ApiError(400, "sql must be a non-empty string")
    performance = performance_of(body)
    require_credits(state, [performance])
    return _submitted(state.executions.submit(AD_HOC_QUERY_ID, sql, performance))


def _execution(request: web.Request) -> Execution:
    execution_id = request.match_info["execution_id"]
    execution = state_of(request).executions.get(execution_id)
    if execution is None:
        raise ApiError(404, f"execution {execution_id} not found")
    return execution


async def execution_status(request: web.Request) -> web.Response:
    return json_response(_execution(request).to_status())


async def cancel_execution(request: web.Request) -> web.Response:
    execution = _execution(request)
    state_of(request).executions.cancel(execution.execution_id)
    return json_response({"success": True})


def _latest(request: web.Request) -> Execution:
    query_id = path_int(request, "query_id")
    state = state_of(request)
    if query_id not in state.catalog.queries:
        raise ApiError(404, f"query {query_id} not found")
    execution = state.executions.latest_result(query_id)
    if execution is None:
        raise ApiError(404, f"query {query_id} has no result yet: execute it first")
    return execution


def _pages_path(execution: Execution, suffix: str) -> str:
    # The latest result's following pages are its execution's: a newer run of the query while a
    # client pages through cannot mix two results.
    return f"/api/v1/execution/{execution.execution_id}/results{suffix}"


async def _json_results(request: web.Request, execution: Execution) -> web.Response:
    state = state_of(request)
    if execution.state not in RESULT_STATES:
        # Not finished, failed, cancelled or expired: what is known of the execution, no result.
        return json_response(execution.to_results_envelope())
    page = parse_page_request(request, execution)
    result = await fetch_page(state.engine, execution, page)
    following = next_offset(page, result)
    uri = (
        next_uri(request, state.origin, following, _pages_path(execution, ""))
        if following is not None
        else None
    )
    body = await state.engine.call(json_page_body, execution, result, following, uri)
    return web.Response(body=body, content_type="application/json")


async def _csv_results(request: web.Request, execution: Execution) -> web.Response:
    state = state_of(request)
    if execution.state not in RESULT_STATES:
        raise ApiError(400, f"execution {execution.execution_id} has no result (state {execution.state})")
    page = parse_page_request(request, execution)
    result = await fetch_page(state.engine, execution, page)
    following = next_offset(page, result)
    headers = {}
    if following is not None:
        headers = {
            "X-Dune-Next-Offset": str(following),
            "X-Dune-Next-Uri": next_uri(request, state.origin, following, _pages_path(execution, "/csv")),
        }
    body = await state.engine.call(csv_page_body, result)
    return web.Response(body=body, content_type="text/csv", headers=headers)


async def execution_results(request: web.Request) -> web.Response:
    return await _json_results(request, _execution(request))


async def execution_results_csv(request: web.Request) -> web.Response:
    return await _csv_results(request, _execution(request))


async def latest_results(request: web.Request) -> web.Response:
    return await _json_results(request, _latest(request))


async def latest_results_csv(request: web.Request) -> web.Response:
    return await _csv_results(request, _latest(request))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/query/{query_id}/execute", execute_query)
    app.router.add_post("/api/v1/sql/execute", execute_sql)
    app.router.add_get("/api/v1/execution/{execution_id}/status", execution_status)
    app.router.add_get("/api/v1/execution/{execution_id}/results", execution_results)
    app.router.add_get("/api/v1/execution/{execution_id}/results/csv", execution_results_csv)
    app.router.add_post("/api/v1/execution/{execution_id}/cancel", cancel_execution)
    app.router.add_get("/api/v1/query/{query_id}/results", latest_results)
    app.router.add_get("/api/v1/query/{query_id}/results/csv", latest_results_csv)
