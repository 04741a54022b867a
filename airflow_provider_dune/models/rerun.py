"""Which nodes of a failed pipeline to run again: the failed and not-run ones, not the rest.

Dune has no "repair run" endpoint, but an explicit node pipeline can hold any subset of nodes.
A retry after a failed pipeline submits the nodes that did not succeed, each keeping its id,
with only the dependencies among themselves: an edge to a node that already succeeded is
satisfied. The plan is made from the earlier run's ``node_executions`` (as the status model
gives them) and the pipeline's node list (the operator's ``nodes``, or the query's pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_dune.models.dune import QueryPipeline, node_state_outcome
from airflow_provider_dune.runs.outcome import RunOutcome

_KIND_OF_TYPE = {"query": "query_execution", "materialized_view": "materialized_view_refresh"}


@dataclass(frozen=True)
class RerunPlan:
    """The nodes to submit (ids kept, dependencies pruned), the labels of those skipped, and
    the earlier run's ``node_executions`` entries of those skipped (carried into the rerun)."""

    nodes: list[Mapping[str, Any]]
    skipped: list[str]
    carried: list[dict[str, Any]]


def succeeded_node_ids(node_executions: Sequence[Mapping[str, Any]] | None) -> set[int]:
    """Ids of the nodes that ended successfully in an earlier run."""
    return {
        int(n["node_id"])
        for n in node_executions or []
        if not n.get("error") and node_state_outcome(str(n.get("status") or "")) is RunOutcome.SUCCEEDED
    }


def _same_node(spec: Mapping[str, Any], ran: Mapping[str, Any]) -> bool:
    kind = _KIND_OF_TYPE.get(str(ran.get("type")))
    body = spec.get(kind or "")
    if not isinstance(body, Mapping):
        return False
    if kind == "query_execution":
        return body.get("query_id") == ran.get("query_id")
    return str(body.get("name", "")).lower() == str(ran.get("name") or "").lower()


def _label(ran: Mapping[str, Any]) -> str:
    what = f"query {ran.get('query_id')}" if ran.get("type") == "query" else f"view {ran.get('name')}"
    return f"node {ran.get('node_id')} ({what}, execution {ran.get('execution_id')})"


def plan_rerun(
    nodes: Sequence[Mapping[str, Any]], node_executions: Sequence[Mapping[str, Any]] | None
) -> RerunPlan | None:
    """The part of ``nodes`` still to run after the earlier run, or ``None`` to run them all.

    ``None`` when nothing (or everything) succeeded, and when the earlier run's nodes cannot be
    matched to ``nodes`` by id and by what they ran: a guess could skip work that never ran.
    """
    done = succeeded_node_ids(node_executions)
    by_id = {int(n["id"]): n for n in nodes}
    if not done or done >= set(by_id):
        return None
    ran_by_id = {int(n["node_id"]): n for n in node_executions or []}
    if not all(i in by_id and _same_node(by_id[i], ran) for i, ran in ran_by_id.items()):
        return None
    rerun: list[Mapping[str, Any]] = [
        {**dict(node), "dependencies": [d for d in node.get("dependencies", []) if d not in done]}
        for node_id, node in by_id.items()
        if node_id not in done
    ]
    return RerunPlan(
        nodes=rerun,
        skipped=[_label(ran_by_id[i]) for i in sorted(done)],
        carried=[dict(ran_by_id[i]) for i in sorted(done)],
    )


def query_pipeline_nodes(
    pipeline: QueryPipeline,
    *,
    query_parameters: Mapping[str, Any] | None = None,
    performance: str | None = None,
) -> list[dict[str, Any]]:
    """A query's pipeline (``GET /v1/query/{id}/pipeline``) as explicit nodes, ready to send:
    the query's own node takes the task's ``query_parameters``, every node the task's tier
    unless the pipeline names one."""
    out = []
    for node in pipeline.nodes:
        tier = node.performance or performance
        body: dict[str, Any] = {"performance": tier} if tier else {}
        if node.type == "materialized_view":
            body["name"] = node.name
            kind = "materialized_view_refresh"
        else:
            body["query_id"] = node.query_id
            params = dict(node.query_parameters)
            if node.query_id == pipeline.query_id and query_parameters:
                params.update(query_parameters)
            if params:
                body["query_parameters"] = params
            kind = "query_execution"
        out.append({"id": node.node_id, "dependencies": list(node.dependencies), kind: body})
    return out
