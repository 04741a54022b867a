"""Per-request plumbing in the order a real API applies it: auth, then the plan's rate budget,
then faults, then the handler, with every ``/api/`` request recorded in the request log (and
handed to the traffic observers, if any). Before all of it, a request that names a foreign
``Host`` or comes from another origin's web page is refused (``host_check``).

The Maia endpoints (``/dpc/``, ``/oauth/``) go through the same steps with Maia's bearer auth
and Maia's error format (``application/problem+json``)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from airflow_provider_dune.emulator import faults, routes_maia, traffic
from airflow_provider_dune.emulator.faults import FaultDecision
from airflow_provider_dune.emulator.http_support import ApiError, error_response, state_of
from airflow_provider_dune.emulator.rate_limits import endpoint_class
from airflow_provider_dune.emulator.request_log import RequestLogEntry

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
ADMIN_PREFIX = "/_emulator/"
HEALTH_PATH = "/_emulator/health"
_GATEWAY_HTML = "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center></body></html>\n"
_GATEWAY_REASONS = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}
# How an error body looks: Dune's {"error": ...} or Maia's problem+json.
ErrorFormat = Callable[[int, str], web.Response]


class _Dropped(Exception):
    """The connection was closed on purpose; there is no response to send or log a status for."""


@web.middleware
async def emulator_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    maia = path.startswith(routes_maia.MAIA_PREFIXES)
    refusal = state_of(request).hosts.refusal(request.headers)
    if refusal is not None:
        return (routes_maia.problem_response if maia else error_response)(403, refusal)
    if not path.startswith(API_PREFIX) and not maia:
        if path.startswith(ADMIN_PREFIX) and path != HEALTH_PATH and not _authorized(request):
            return error_response(401, "invalid API Key")
        return await _handle(request, handler)
    state = state_of(request)
    if maia:
        key_in_url = "access_token" in request.query or "client_secret" in request.query
        errors: ErrorFormat = routes_maia.problem_response
        allowed = routes_maia.authorized(request)
    else:
        key_in_url = "api_key" in request.query
        errors = error_response
        allowed = _authorized(request)
    fault: FaultDecision | None = None
    status: int | None = None
    limit_class = None if maia else endpoint_class(request.method, path)
    rate_limited = False
    try:
        if not allowed:
            # The api_key query parameter is deliberately not honoured: keys in URLs leak into logs.
            response: web.StreamResponse = errors(401, "invalid API Key" if not maia else "Unauthorized")
        elif limit_class is not None and (over_budget := _over_budget(request, limit_class)) is not None:
            rate_limited = True
            response = over_budget
        else:
            fault = state.faults.decide(request.method, path)
            response = await _respond(request, handler, fault, errors)
        status = response.status
        if traffic.observed() and not maia:
            await _publish(request, response, fault)
        return response
    except _Dropped:
        raise asyncio.CancelledError from None
    finally:
        state.request_log.append(
            RequestLogEntry(
                time.time(),
                request.method,
                path,
                status,
                key_in_url,
                fault.name if fault else None,
                limit_class,
                rate_limited,
            )
        )


def _over_budget(request: web.Request, limit_class: str) -> web.Response | None:
    """The 429 for a request past its key's plan budget; ``None`` admits (and counts) it."""
    budget = state_of(request).rate_budget
    if budget is None:
        return None
    wait = budget.admit(request.headers.get("X-Dune-Api-Key", ""), limit_class)
    if wait is None:
        return None
    response = error_response(429, "Too many requests, please slow down")
    if budget.plan.retry_after:
        response.headers["Retry-After"] = str(max(1, round(wait + 0.5)))
    return response


async def _publish(request: web.Request, response: web.StreamResponse, fault: FaultDecision | None) -> None:
    body = response.body if isinstance(response, web.Response) else None
    traffic.publish(
        traffic.Exchange(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            request_headers={
                name: request.headers[name]
                for name in traffic.KEPT_REQUEST_HEADERS
                if name in request.headers
            },
            # aiohttp keeps what the handler read; an unread body (a 401) is read here.
            request_body=await request.read(),
            status=response.status,
            response_content_type=response.content_type,
            response_body=body if isinstance(body, bytes) else b"",
            fault=fault.name if fault else None,
            key_supplied="X-Dune-Api-Key" in request.headers,
        )
    )


def _authorized(request: web.Request) -> bool:
    supplied = request.headers.get("X-Dune-Api-Key")
    return supplied is not None and hmac.compare_digest(supplied.encode(), state_of(request).api_key.encode())


async def _respond(
    request: web.Request, handler: Handler, fault: FaultDecision | None, errors: ErrorFormat = error_response
) -> web.StreamResponse:
    if fault is None:
        return await _handle(request, handler, errors)
    if fault.name == faults.SLOW:
        await asyncio.sleep(fault.rule.slow_seconds)
        return await _handle(request, handler, errors)
    if fault.before_work:
        if fault.name == faults.DROP:
            _drop(request)
        return _fault_response(fault, errors)
    response = await _handle(request, handler, errors)
    if fault.name == faults.DROP:
        _drop(request)
    # Malformed: the work happened, but the client receives half a JSON document.
    body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b"{}"
    return web.Response(
        body=body[: max(1, len(body) // 2)], status=response.status, content_type="application/json"
    )


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()
    raise _Dropped


def _fault_response(fault: FaultDecision, errors: ErrorFormat = error_response) -> web.Response:
    status = fault.status or 500
    if status == 429:
        headers = (
            {"Retry-After": str(fault.rule.retry_after_seconds)}
            if fault.name == faults.RATE_LIMIT_RETRY_AFTER
            else {}
        )
        response = errors(429, "Too many requests, please slow down")
        response.headers.update(headers)
        return response
    if status in _GATEWAY_REASONS:
        return web.Response(
            text=_GATEWAY_HTML.format(_GATEWAY_REASONS[status]), status=status, content_type="text/html"
        )
    return errors(status, "Internal error" if status == 500 else "Service temporarily unavailable")


async def _handle(
    request: web.Request, handler: Handler, errors: ErrorFormat = error_response
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return errors(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return errors(exc.status, exc.reason or "error")
    except Exception:
        log.exception("emulator handler crashed on %s %s", request.method, request.path)
        return errors(500, "Internal error")
