"""Pipeline definitions: parsing the explicit ``pipeline.nodes`` body and deriving lineage.

Both produce the same list of :class:`NodeSpec`, already validated (known queries and views,
dependencies that exist, no cycles), so the runner never meets a malformed pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dune.emulator.catalog import PERFORMANCE_TIERS, Catalog, CatalogError

QUERY_EXECUTION = "query_execution"
VIEW_REFRESH = "materialized_view_refresh"


class PipelineSpecError(ValueError):
    """The pipeline cannot run as described; the message goes back to the client in a 400."""


@dataclass(frozen=True)
class NodeSpec:
    node_id: int
    kind: str  # QUERY_EXECUTION or VIEW_REFRESH
    query_id: int  # for a view refresh: the query that builds the view
    dependencies: tuple[int, ...] = ()
    view_name: str | None = None
    performance: str = "medium"
    query_parameters: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == VIEW_REFRESH:
            return f"node {self.node_id} (materialized view {self.view_name})"
        return f"node {self.node_id} (query {self.query_id})"

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.node_id, "dependencies": list(self.dependencies)}
        if self.kind == VIEW_REFRESH:
            body[VIEW_REFRESH] = {"name": self.view_name, "performance": self.performance}
        else:
            body[QUERY_EXECUTION] = {
                "query_id": self.query_id,
                "performance": self.performance,
                "query_parameters": dict(self.query_parameters),
            }
        return body


def _performance(value: Any, where: str) -> str:
    if value is None:
        return "medium"
    if value not in PERFORMANCE_TIERS:
        raise PipelineSpecError(
            f"{where}: performance must be one of {', '.join(PERFORMANCE_TIERS)}, got {value!r}"
        )
    return str(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PipelineSpecError(f"{where} must be an integer, got {value!r}")
    return value


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PipelineSpecError(f"{where}: query_parameters must be an object")
    return dict(value)


def parse_explicit_nodes(catalog: Catalog, pipeline: Any) -> list[NodeSpec]:
    if (
        not isinstance(pipeline, Mapping)
        or not isinstance(pipeline.get("nodes"), list)
        or not pipeline["nodes"]
    ):
        raise PipelineSpecError("pipeline.nodes must be a non-empty list")
    specs: list[NodeSpec] = []
    for index, raw in enumerate(pipeline["nodes"]):
        if not isinstance(raw, Mapping):
            raise PipelineSpecError(f"pipeline.nodes[{index}] must be an object")
        node_id = _integer(raw.get("id"), f"pipeline.nodes[{index}].id")
        where = f"node {node_id}"
        dependencies = raw.get("dependencies") or []
        if not isinstance(dependencies, list):
            raise PipelineSpecError(f"{where}: dependencies must be a list of node ids")
        deps = tuple(_integer(dep, f"{where}: dependency") for dep in dependencies)
        has_query, has_view = QUERY_EXECUTION in raw, VIEW_REFRESH in raw
        if has_query == has_view:
            raise PipelineSpecError(
                f"{where}: needs exactly one of query_execution or materialized_view_refresh"
            )
        body = raw[QUERY_EXECUTION] if has_query else raw[VIEW_REFRESH]
        if not isinstance(body, Mapping):
            raise PipelineSpecError(f"{where}: node configuration must be an object")
        performance = _performance(body.get("performance"), where)
        if has_query:
            query_id = _integer(body.get("query_id"), f"{where}: query_id")
            if query_id not in catalog.queries:
                raise PipelineSpecError(f"{where}: query {query_id} does not exist")
            parameters = _parameters(body.get("query_parameters"), where)
            specs.append(NodeSpec(node_id, QUERY_EXECUTION, query_id, deps, None, performance, parameters))
        else:
            name = body.get("name")
            view = catalog.find_view(name) if isinstance(name, str) else None
            if view is None:
                raise PipelineSpecError(f"{where}: materialized view {name!r} does not exist")
            specs.append(NodeSpec(node_id, VIEW_REFRESH, view.query_id, deps, view.name, performance))
    validate_graph(specs)
    return specs


def validate_graph(specs: list[NodeSpec]) -> None:
    ids = [spec.node_id for spec in specs]
    duplicates = sorted({node_id for node_id in ids if ids.count(node_id) > 1})
    if duplicates:
        raise PipelineSpecError(f"duplicate node ids: {duplicates}")
    known = set(ids)
    for spec in specs:
        for dep in spec.dependencies:
            if dep == spec.node_id:
                raise PipelineSpecError(f"node {spec.node_id} depends on itself")
            if dep not in known:
                raise PipelineSpecError(f"node {spec.node_id} depends on unknown node {dep}")
    remaining = {spec.node_id: set(spec.dependencies) for spec in specs}
    while remaining:
        ready = [node_id for node_id, deps in remaining.items() if not deps]
        if not ready:
            raise PipelineSpecError(f"dependency cycle between nodes {sorted(remaining)}")
        for node_id in ready:
            del remaining[node_id]
        for deps in remaining.values():
            deps.difference_update(ready)


def lineage_nodes(
    catalog: Catalog, query_id: int, performance: str | None = None, query_parameters: Any = None
) -> list[NodeSpec]:
    """The views the query reads (recursively) as refresh nodes, upstream first, then the query."""
    if query_id not in catalog.queries:
        raise CatalogError(f"query {query_id} does not exist")
    ordered: list[str] = []
    visiting: list[str] = []

    def visit_view(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise PipelineSpecError(
                f"materialized views read each other in a cycle: {' -> '.join([*visiting, name])}"
            )
        visiting.append(name)
        for upstream in catalog.referenced_views(catalog.queries[catalog.views[name].query_id].sql):
            visit_view(upstream)
        visiting.pop()
        ordered.append(name)

    direct = catalog.referenced_views(catalog.queries[query_id].sql)
    for name in direct:
        visit_view(name)
    node_ids = {name: index + 1 for index, name in enumerate(ordered)}
    specs = [
        NodeSpec(
            node_id=node_ids[name],
            kind=VIEW_REFRESH,
            query_id=catalog.views[name].query_id,
            dependencies=tuple(
                node_ids[upstream]
                for upstream in catalog.referenced_views(catalog.queries[catalog.views[name].query_id].sql)
            ),
            view_name=name,
            performance=catalog.views[name].performance,
        )
        for name in ordered
    ]
    specs.append(
        NodeSpec(
            node_id=len(ordered) + 1,
            kind=QUERY_EXECUTION,
            query_id=query_id,
            dependencies=tuple(node_ids[name] for name in direct),
            performance=_performance(performance, f"query {query_id}"),
            query_parameters=_parameters(query_parameters, f"query {query_id}"),
        )
    )
    return specs
