"""The body of ``POST /v1/pipelines/execute``, validated before anything is sent.

Both documented shapes are built here: ``{query_id, performance, query_parameters}``
(Dune finds the lineage) and ``{"pipeline": {"nodes": [...]}}`` (explicit nodes). A
``performance`` tier is sent only when the user chose one (Dune then uses its default,
``medium``). Every mistake we can see locally (an unknown dependency, a cycle, a node that is
both a query and a view refresh, a performance tier Dune does not document) is raised as
:class:`DuneConfigurationError` naming the node and how to fix it, so a bad DAG fails
without spending an API call or a credit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_dune.exceptions import DuneConfigurationError

# The engine tiers Dune's API documents for executions, pipelines and view refreshes.
PERFORMANCE_TIERS = ("medium", "large")
_NODE_KINDS = ("query_execution", "materialized_view_refresh")


def check_performance(value: Any, where: str = "performance") -> str:
    if value not in PERFORMANCE_TIERS:
        raise DuneConfigurationError(
            f"{where} is {value!r}; Dune's API documents the performance tiers "
            + " and ".join(PERFORMANCE_TIERS)
            + " (leave it unset for Dune's default, medium)."
        )
    return str(value)


def performance_field(value: Any, where: str = "performance") -> dict[str, str]:
    """``{"performance": tier}`` when the user chose a tier, else nothing: Dune applies its default."""
    return {} if value is None else {"performance": check_performance(value, where)}


def _check_int_id(value: Any, what: str) -> int:
    # bool is an int in Python, but True is never a query id somebody meant.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise DuneConfigurationError(f"{what} must be an integer, got {value!r}.")
    if value <= 0:
        raise DuneConfigurationError(f"{what} must be a positive integer, got {value}.")
    return value


def _check_parameters(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DuneConfigurationError(
            f"{where} must be a mapping of parameter name to value, got {type(value).__name__}."
        )
    bad = [k for k in value if not isinstance(k, str) or not k]
    if bad:
        raise DuneConfigurationError(f"{where} has non-string parameter names: {bad!r}.")
    return dict(value)


def _find_cycle(deps: Mapping[int, Sequence[int]]) -> list[int] | None:
    """Return one cycle as a list of node ids (first id repeated at the end), or None.

    A depth-first walk with its own stack rather than recursion, so a pipeline of any length
    is checked (Python's recursion limit stops a recursive walk near 1,000 nodes deep), in time
    proportional to the nodes and dependencies.
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(deps, white)
    for start in deps:
        if colour[start] != white:
            continue
        colour[start] = grey
        path = [start]  # the grey nodes, in the order the walk entered them
        pending = [iter(deps[start])]  # for each node on the path, the dependencies left to visit
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                colour[path.pop()] = black
                pending.pop()
            elif colour[dep] == grey:
                return [*path[path.index(dep) :], dep]
            elif colour[dep] == white:
                colour[dep] = grey
                path.append(dep)
                pending.append(iter(deps[dep]))
    return None


def _normalise_node(raw: Any, position: int) -> dict[str, Any]:
    where = f"nodes[{position}]"
    if not isinstance(raw, Mapping):
        raise DuneConfigurationError(f"{where} must be a mapping, got {type(raw).__name__}.")
    unknown = set(raw) - {"id", "dependencies", *_NODE_KINDS}
    if unknown:
        raise DuneConfigurationError(
            f"{where} has unknown keys {sorted(unknown)}; a node has 'id', 'dependencies' and exactly one "
            "of 'query_execution' or 'materialized_view_refresh'."
        )
    if "id" not in raw:
        raise DuneConfigurationError(f"{where} has no 'id'; give every node a unique integer id.")
    node_id = _check_int_id(raw["id"], f"{where}.id")
    where = f"node {node_id}"
    kinds = [k for k in _NODE_KINDS if raw.get(k) is not None]
    if len(kinds) != 1:
        found = " and ".join(kinds) if kinds else "neither"
        raise DuneConfigurationError(
            f"{where} has {found}; each node needs exactly one of 'query_execution' "
            "(runs a query) or 'materialized_view_refresh' (refreshes a view)."
        )
    deps_raw = raw.get("dependencies") or []
    if not isinstance(deps_raw, (list, tuple)):
        raise DuneConfigurationError(
            f"{where}.dependencies must be a list of node ids, got {type(deps_raw).__name__}."
        )
    deps = [_check_int_id(d, f"{where}.dependencies entry") for d in deps_raw]
    if len(set(deps)) != len(deps):
        raise DuneConfigurationError(f"{where} lists a dependency twice: {deps}.")
    kind = kinds[0]
    body = raw[kind]
    if not isinstance(body, Mapping):
        raise DuneConfigurationError(f"{where}.{kind} must be a mapping, got {type(body).__name__}.")
    out: dict[str, Any] = {}
    if kind == "query_execution":
        allowed = {"query_id", "performance", "query_parameters"}
        if set(body) - allowed:
            raise DuneConfigurationError(
                f"{where}.query_execution has unknown keys {sorted(set(body) - allowed)}; "
                f"allowed: {sorted(allowed)}."
            )
        if "query_id" not in body:
            raise DuneConfigurationError(f"{where}.query_execution needs a 'query_id'.")
        out["query_id"] = _check_int_id(body["query_id"], f"{where}.query_execution.query_id")
        params = _check_parameters(body.get("query_parameters"), f"{where}.query_execution.query_parameters")
        if params:
            out["query_parameters"] = params
    else:
        allowed = {"name", "performance"}
        if set(body) - allowed:
            raise DuneConfigurationError(
                f"{where}.materialized_view_refresh has unknown keys {sorted(set(body) - allowed)}; "
                f"allowed: {sorted(allowed)}."
            )
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DuneConfigurationError(
                f"{where}.materialized_view_refresh needs a 'name', e.g. 'dune.my_team.result_my_view'."
            )
        out["name"] = name
    out.update(performance_field(body.get("performance"), f"{where}.{kind}.performance"))
    return {"id": node_id, "dependencies": deps, kind: out}


def validate_nodes(nodes: Any) -> list[dict[str, Any]]:
    """Check an explicit node list and return it normalised, ready to send."""
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Sequence):
        raise DuneConfigurationError(f"nodes must be a list of node mappings, got {type(nodes).__name__}.")
    if not nodes:
        raise DuneConfigurationError("nodes is empty; a pipeline needs at least one node.")
    normalised = [_normalise_node(raw, i) for i, raw in enumerate(nodes)]
    ids = [n["id"] for n in normalised]
    duplicates = sorted(node_id for node_id, uses in Counter(ids).items() if uses > 1)
    if duplicates:
        raise DuneConfigurationError(f"node ids must be unique; used more than once: {duplicates}.")
    known = set(ids)
    for node in normalised:
        missing = [d for d in node["dependencies"] if d not in known]
        if missing:
            raise DuneConfigurationError(
                f"node {node['id']} depends on {missing}, which is not a node of this pipeline "
                f"(node ids: {sorted(known)}). Fix the dependency or add the node."
            )
        if node["id"] in node["dependencies"]:
            raise DuneConfigurationError(f"node {node['id']} depends on itself.")
    cycle = _find_cycle({n["id"]: n["dependencies"] for n in normalised})
    if cycle:
        raise DuneConfigurationError(
            "nodes form a cycle: "
            + " -> ".join(str(c) for c in cycle)
            + " (each arrow reads 'depends on'). A pipeline must be acyclic: "
            "remove one of these dependencies."
        )
    return normalised


def build_pipeline_request(
    *,
    query_id: Any = None,
    nodes: Any = None,
    performance: Any = None,
    query_parameters: Any = None,
) -> dict[str, Any]:
    """The JSON body for ``POST /v1/pipelines/execute``, or a clear error.

    ``performance`` (``medium`` or ``large``) is sent only when given; with ``nodes`` it is the
    tier of every node that does not name its own."""
    if (query_id is None) == (nodes is None):
        raise DuneConfigurationError(
            "Give exactly one of query_id (Dune finds the pipeline from the query's lineage) "
            "or nodes (an explicit pipeline)."
        )
    if nodes is not None:
        if query_parameters:
            raise DuneConfigurationError(
                "query_parameters applies to the query_id form only; with nodes, put "
                "query_parameters inside each node's query_execution."
            )
        tier = performance_field(performance)
        validated = validate_nodes(nodes)
        # The operator's tier is the default for every node that does not name its own.
        for node in validated:
            for kind in _NODE_KINDS:
                if kind in node:
                    node[kind] = {**tier, **node[kind]}
        return {"pipeline": {"nodes": validated}}
    body: dict[str, Any] = {"query_id": _check_int_id(query_id, "query_id"), **performance_field(performance)}
    params = _check_parameters(query_parameters, "query_parameters")
    if params:
        body["query_parameters"] = params
    return body
