"""Assemble the aiohttp application from the emulator state and the route modules."""

from __future__ import annotations

from aiohttp import web

from airflow_provider_dune.emulator import (
    routes_admin,
    routes_executions,
    routes_maia,
    routes_pipelines,
    routes_queries,
    routes_usage,
    routes_views,
)
from airflow_provider_dune.emulator.maia_state import MAIA_KEY, MaiaService
from airflow_provider_dune.emulator.middleware import emulator_middleware
from airflow_provider_dune.emulator.state import STATE_KEY, EmulatorState


def build_app(state: EmulatorState, maia: MaiaService | None = None) -> web.Application:
    app = web.Application(middlewares=[emulator_middleware])
    app[STATE_KEY] = state
    # The Maia endpoints share the server, its faults and its request log with the Dune API.
    app[MAIA_KEY] = maia if maia is not None else MaiaService()
    routes_maia.add_routes(app)
    routes_pipelines.add_routes(app)
    routes_executions.add_routes(app)
    routes_queries.add_routes(app)
    routes_views.add_routes(app)
    routes_usage.add_routes(app)
    routes_admin.add_routes(app)
    return app
