"""The contract report: per operation of Dune's specification, whether the emulator serves it,
whether the client calls it, and whether what was exchanged was checked against the spec."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiohttp import web

from airflow_provider_dune.emulator import (
    routes_executions,
    routes_pipelines,
    routes_queries,
    routes_usage,
    routes_views,
)
from tests.contract.spec import BASE_PATH, operations

if TYPE_CHECKING:
    from tests.contract.plugin import TrafficRecorder
    from tests.contract.validation import Violation


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def served_operations() -> set[tuple[str, str]]:
    """``(METHOD, path shape)`` of every Dune route the emulator registers."""
    app = web.Application()
    for module in (routes_executions, routes_pipelines, routes_queries, routes_usage, routes_views):
        module.add_routes(app)
    return {
        (route.method, _shape(route.resource.canonical))
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def contract_report(recorder: TrafficRecorder, violations: list[Violation]) -> str:
    served = served_operations()
    broken = {(v.method, recorder.checker.operation_of(v.method, v.path)) for v in violations}
    lines = [
        "| operation | emulator serves | client calls | emulator answers checked | client requests checked |",
        "|---|---|---|---|---|",
    ]
    for method, path in operations():
        key = (method, path)
        answers, calls = recorder.answers[key], recorder.client_calls[key]
        verdict = "violations" if key in broken else "valid"
        lines.append(
            f"| `{method} {path}` "
            f"| {'yes' if (method, _shape(BASE_PATH + path)) in served else 'no'} "
            f"| {'yes' if calls else 'no'} "
            f"| {f'{answers} ({verdict})' if answers else '-'} "
            f"| {f'{calls} ({verdict})' if calls else '-'} |"
        )
    return "\n".join(lines)
