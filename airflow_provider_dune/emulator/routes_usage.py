"""``POST /v1/usage``: the credits this billing period has used, and the account's limit."""

from __future__ import annotations

from datetime import date, timedelta

from aiohttp import web

from airflow_provider_dune.emulator.http_support import ApiError, json_body, json_response, state_of

_BILLING_DAYS = 30


async def usage(request: web.Request) -> web.Response:
    body = await json_body(request, allow_empty=True)
    for key in ("start_date", "end_date"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise ApiError(400, f"{key} must be a date string YYYY-MM-DD")
    executions = state_of(request).executions
    start = date.today().replace(day=1)
    return json_response(
        {
            "billing_periods": [
                {
                    "start_date": start.isoformat(),
                    "end_date": (start + timedelta(days=_BILLING_DAYS)).isoformat(),
                    "credits_used": executions.credits_used,
                    # What the account may spend this period: its limit, or nothing said without one.
                    "credits_included": executions.credit_limit or 0,
                }
            ],
            "bytes_used": 0,
            "bytes_allowed": 0,
            "private_queries": 0,
            "private_dashboards": 0,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/usage", usage)
