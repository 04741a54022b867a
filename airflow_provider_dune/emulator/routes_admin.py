"""Control endpoints outside the Dune API (``/_emulator/...``), for an emulator run from the
command line: read or replace the fault rules and read or clear the request log. They need the
same API key and are neither logged nor subject to faults."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from airflow_provider_dune.emulator.faults import FaultConfig
from airflow_provider_dune.emulator.http_support import ApiError, json_response, state_of


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def get_faults(request: web.Request) -> web.Response:
    return json_response({"rules": [rule.to_dict() for rule in state_of(request).faults.rules]})


async def put_faults(request: web.Request) -> web.Response:
    """Body: ``{"rules": [{...FaultConfig fields...}]}``, or one rule's fields; ``{}`` clears."""
    body = await request.json()
    raw_rules = body.get("rules", [body] if body else []) if isinstance(body, dict) else None
    if not isinstance(raw_rules, list) or not all(isinstance(rule, dict) for rule in raw_rules):
        raise ApiError(400, "expected {'rules': [fault settings, ...]}")
    try:
        rules = [FaultConfig.from_dict(rule) for rule in raw_rules]
    except (TypeError, ValueError) as exc:
        raise ApiError(400, str(exc)) from exc
    state_of(request).faults.set_rules(rules)
    return await get_faults(request)


async def get_requests(request: web.Request) -> web.Response:
    return json_response({"requests": [asdict(entry) for entry in state_of(request).request_log.entries()]})


async def clear_requests(request: web.Request) -> web.Response:
    state_of(request).request_log.clear()
    return json_response({"success": True})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/health", health)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_put("/_emulator/faults", put_faults)
    app.router.add_get("/_emulator/requests", get_requests)
    app.router.add_delete("/_emulator/requests", clear_requests)
