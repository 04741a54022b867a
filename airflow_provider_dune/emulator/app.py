"""Assemble the aiohttp application from the emulator state and the route modules."""

from __future__ import annotations

from aiohttp import web

from airflow_provider_dune.emulator import (
    routes_admin,
    routes_executions,
    routes_pipelines,
    routes_queries,
    routes_views,
)
from airflow_provider_dune.emulator.middleware import emulator_middleware
from airflow_provider_dune.emulator.state import STATE_KEY, EmulatorState


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(middlewares=[emulator_middleware])
    app[STATE_KEY] = state
    routes_pipelines.add_routes(app)
    routes_executions.add_routes(app)
    routes_queries.add_routes(app)
    routes_views.add_routes(app)
    routes_admin.add_routes(app)
    return app
