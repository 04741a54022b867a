"""The Maia endpoints the provider uses: the OAuth token endpoint and pipeline executions.

Served beside the Dune API: ``/oauth/dpc/token`` stands for ``https://id.core.matillion.com/oauth/dpc/token``
and ``/dpc/v1/...`` for ``https://{region}.api.matillion.com/dpc/v1/...``. Errors are
``application/problem+json``, as Maia sends them; the token endpoint answers OAuth's
``{"error", "error_description"}`` instead. The middleware applies bearer auth, faults and
the request log to both prefixes, as it does for ``/api/``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from airflow_provider_dune.emulator.maia_state import MAIA_KEY, MaiaProblem, MaiaService, details_of, steps_of

MAIA_API_PREFIX = "/dpc/"
MAIA_TOKEN_PATH = "/oauth/dpc/token"
MAIA_PREFIXES = (MAIA_API_PREFIX, "/oauth/")
_EXECUTIONS = MAIA_API_PREFIX + "v1/projects/{project_id}/pipeline-executions"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def maia_of(request: web.Request) -> MaiaService:
    return request.app[MAIA_KEY]


def problem_response(status: int, detail: str, violations: tuple[str, ...] = ()) -> web.Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
        "status": status,
        "detail": detail,
    }
    if violations:
        body["violations"] = list(violations)
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/problem+json"
    )


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


def authorized(request: web.Request) -> bool:
    """Bearer auth for ``/dpc/``; the token endpoint checks the client credentials itself."""
    if request.path.startswith("/oauth/"):
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and bool(token) and maia_of(request).token_valid(token.strip())


def problems(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except MaiaProblem as exc:
            return problem_response(exc.status, exc.detail, exc.violations)

    return wrapped


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise MaiaProblem(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MaiaProblem(400, "request body must be a JSON object")
    return body


async def token(request: web.Request) -> web.Response:
    maia = maia_of(request)
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return _json({"error": "unsupported_grant_type", "error_description": "use client_credentials"}, 400)
    client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    good = hmac.compare_digest(client_id.encode(), maia.client_id.encode()) and hmac.compare_digest(
        secret.encode(), maia.client_secret.encode()
    )
    if not good:
        return _json({"error": "invalid_client", "error_description": "Unauthorized"}, 401)
    return _json(
        {"access_token": maia.issue_token(), "token_type": "Bearer", "expires_in": maia.token_seconds}
    )


async def list_projects(request: web.Request) -> web.Response:
    maia = maia_of(request)
    results = [{"id": pid, "name": "Emulator project", "description": "emulated"} for pid in maia.projects]
    return _json({"page": 0, "size": len(results), "total": len(results), "results": results})


async def list_environments(request: web.Request) -> web.Response:
    environments = maia_of(request).require_project(request.match_info["project_id"])
    results = [{"name": name, "defaultAgentName": "Emulator agent"} for name in environments]
    return _json({"page": 0, "size": len(results), "total": len(results), "results": results})


async def start_execution(request: web.Request) -> web.Response:
    execution = maia_of(request).start(request.match_info["project_id"], await _body(request))
    return _json({"pipelineExecutionId": execution.id})


async def execution_status(request: web.Request) -> web.Response:
    maia = maia_of(request)
    execution = maia.get(request.match_info["project_id"], request.match_info["execution_id"])
    return _json({"status": maia.status_of(execution)})


async def execution_details(request: web.Request) -> web.Response:
    maia = maia_of(request)
    execution = maia.get(request.match_info["project_id"], request.match_info["execution_id"])
    return _json(details_of(execution, maia.status_of(execution)))


async def execution_steps(request: web.Request) -> web.Response:
    maia = maia_of(request)
    execution = maia.get(request.match_info["project_id"], request.match_info["execution_id"])
    steps = steps_of(execution, maia.status_of(execution))
    try:
        page, size = int(request.query.get("page", 0)), int(request.query.get("size", 25))
    except ValueError:
        raise MaiaProblem(400, "page and size must be whole numbers") from None
    chunk = steps[page * size : (page + 1) * size] if page >= 0 and size > 0 else []
    return _json({"page": page, "size": size, "total": len(steps), "results": chunk})


async def cancel_execution(request: web.Request) -> web.Response:
    execution = maia_of(request).cancel(
        request.match_info["project_id"], request.match_info["execution_id"], await _body(request)
    )
    return _json({"pipelineExecutionId": execution.id})


def add_routes(app: web.Application) -> None:
    app.router.add_post(MAIA_TOKEN_PATH, problems(token))
    app.router.add_get(MAIA_API_PREFIX + "v1/projects", problems(list_projects))
    app.router.add_get(MAIA_API_PREFIX + "v1/projects/{project_id}/environments", problems(list_environments))
    app.router.add_post(_EXECUTIONS, problems(start_execution))
    app.router.add_get(_EXECUTIONS + "/{execution_id}/status", problems(execution_status))
    app.router.add_get(_EXECUTIONS + "/{execution_id}/steps", problems(execution_steps))
    app.router.add_get(_EXECUTIONS + "/{execution_id}", problems(execution_details))
    app.router.add_patch(_EXECUTIONS + "/{execution_id}", problems(cancel_execution))
