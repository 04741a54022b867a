"""Small helpers shared by the route modules: JSON bodies and Dune-style errors."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from airflow_provider_dune.emulator.state import STATE_KEY, EmulatorState


class ApiError(Exception):
    """Raised by handlers; the middleware turns it into ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def state_of(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


async def json_body(request: web.Request, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "request body must be a JSON object")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def path_int(request: web.Request, name: str) -> int:
    value = request.match_info[name]
    try:
        return int(value)
    except ValueError as exc:
        raise ApiError(400, f"{name} must be an integer, got {value!r}") from exc


def query_int(request: web.Request, name: str, default: int | None = None, minimum: int = 0) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ApiError(400, f"{name} must be an integer, got {value!r}") from exc
    if number < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}")
    return number
