"""Query management: create, read, update, archive and make private saved queries."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_provider_dune.emulator.catalog import QueryDef
from airflow_provider_dune.emulator.http_support import ApiError, json_body, json_response, path_int, state_of


def _parameters(body: dict[str, Any]) -> list[dict[str, Any]]:
    parameters = body.get("parameters") or []
    if not isinstance(parameters, list) or not all(
        isinstance(param, dict) and isinstance(param.get("key"), str) for param in parameters
    ):
        raise ApiError(400, "parameters must be a list of objects with a string 'key'")
    return [dict(param) for param in parameters]


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{key} must be a non-empty string")
    return value


async def create_query(request: web.Request) -> web.Response:
    catalog = state_of(request).catalog
    body = await json_body(request)
    query = QueryDef(
        query_id=catalog.next_query_id(),
        name=_string(body, "name"),
        sql=_string(body, "query_sql"),
        parameters=_parameters(body),
        is_private=bool(body.get("is_private", False)),
        description=str(body.get("description") or ""),
    )
    catalog.add_query(query)
    return json_response({"query_id": query.query_id})


def _query(request: web.Request) -> QueryDef:
    query_id = path_int(request, "query_id")
    query = state_of(request).catalog.queries.get(query_id)
    if query is None:
        raise ApiError(404, f"query {query_id} not found")
    return query


async def read_query(request: web.Request) -> web.Response:
    return json_response(_query(request).to_api())


async def update_query(request: web.Request) -> web.Response:
    query = _query(request)
    body = await json_body(request)
    # Validate everything before changing anything, so a 400 leaves the query untouched.
    name = _string(body, "name") if "name" in body else query.name
    sql = _string(body, "query_sql") if "query_sql" in body else query.sql
    parameters = _parameters(body) if "parameters" in body else query.parameters
    query.name, query.sql, query.parameters = name, sql, parameters
    query.version += 1
    if "description" in body:
        query.description = str(body["description"] or "")
    if "is_private" in body:
        query.is_private = bool(body["is_private"])
    return json_response({"query_id": query.query_id})


def _setter(field: str, value: bool) -> Any:
    async def handler(request: web.Request) -> web.Response:
        query = _query(request)
        setattr(query, field, value)
        return json_response({"query_id": query.query_id})

    return handler


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/query", create_query)
    # Dune serves the collection with a trailing slash too; the official SDK's create_query uses it.
    app.router.add_post("/api/v1/query/", create_query)
    app.router.add_post("/api/v1/query/{query_id}/archive", _setter("is_archived", True))
    app.router.add_post("/api/v1/query/{query_id}/unarchive", _setter("is_archived", False))
    app.router.add_post("/api/v1/query/{query_id}/private", _setter("is_private", True))
    app.router.add_post("/api/v1/query/{query_id}/unprivate", _setter("is_private", False))
    app.router.add_get("/api/v1/query/{query_id}", read_query)
    app.router.add_patch("/api/v1/query/{query_id}", update_query)
