"""Pipeline executions: run validated nodes in dependency order and report their status.

Pipeline status: ``pending`` -> ``executing`` -> ``completed`` | ``failed`` | ``cancelled``.
Node status: ``pending``, ``executing``, ``completed``, ``failed``, ``cancelled``, ``skipped``
(an upstream node did not complete, so this one never ran). Independent branches keep running
after a failure; the pipeline fails once everything that can run has finished.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dune.emulator import executions as states
from airflow_provider_dune.emulator.bounds import forget_oldest_finished
from airflow_provider_dune.emulator.catalog import Catalog
from airflow_provider_dune.emulator.executions import Execution, ExecutionService
from airflow_provider_dune.emulator.ids import new_ulid
from airflow_provider_dune.emulator.pipeline_specs import VIEW_REFRESH, NodeSpec

PIPELINE_PENDING = "pending"
PIPELINE_EXECUTING = "executing"
PIPELINE_COMPLETED = "completed"
PIPELINE_FAILED = "failed"
PIPELINE_CANCELLED = "cancelled"
NODE_SKIPPED = "skipped"

_NODE_STATUS = {
    states.PENDING: "pending",
    states.EXECUTING: "executing",
    states.COMPLETED: "completed",
    states.COMPLETED_PARTIAL: "completed",
    states.EXPIRED: "completed",
    states.FAILED: "failed",
    states.CANCELED: "cancelled",
}


@dataclass
class NodeRun:
    spec: NodeSpec
    sql: str
    duration: float | None
    execution: Execution | None = None
    skipped: bool = False

    @property
    def status(self) -> str:
        if self.skipped:
            return NODE_SKIPPED
        if self.execution is None:
            return "pending"
        return _NODE_STATUS.get(self.execution.state, "executing")

    @property
    def error(self) -> str | None:
        execution = self.execution
        if execution is None:
            return None
        if execution.error is not None:
            return str(execution.error.to_api(execution.execution_id)["message"])
        if execution.state == states.CANCELED:
            return "execution was cancelled"
        return None

    def to_api(self) -> dict[str, Any]:
        status: dict[str, Any] = {"status": self.status}
        if self.execution is not None:
            status["execution_id"] = self.execution.execution_id
        if self.spec.kind == VIEW_REFRESH:
            status["name"] = self.spec.view_name
        else:
            status["query_id"] = self.spec.query_id
        error = self.error
        if error is not None:
            status["error"] = error
        key = (
            "materialized_view_refresh_status" if self.spec.kind == VIEW_REFRESH else "query_execution_status"
        )
        return {"id": self.spec.node_id, key: status}


@dataclass
class PipelineRun:
    pipeline_execution_id: str
    nodes: list[NodeRun]
    final_status: str | None = None
    error: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def status(self) -> str:
        if self.final_status is not None:
            return self.final_status
        started = any(node.execution is not None for node in self.nodes)
        return PIPELINE_EXECUTING if started else PIPELINE_PENDING

    def to_status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "node_executions": [node.to_api() for node in self.nodes],
        }
        if self.error is not None:
            body["error"] = self.error
        return body


def render_nodes(catalog: Catalog, specs: list[NodeSpec]) -> list[NodeRun]:
    """Render every node's SQL up front so a missing parameter is a 400, not a failed node later."""
    runs = []
    for spec in specs:
        query = catalog.queries[spec.query_id]
        runs.append(NodeRun(spec, query.render_sql(spec.query_parameters), query.execution_seconds))
    return runs


class PipelineService:
    def __init__(self, executions: ExecutionService, catalog: Catalog, max_pipelines: int = 10_000) -> None:
        self.executions = executions
        self.catalog = catalog
        # Past this many pipeline runs, the oldest finished ones are forgotten (404 from then on).
        self.max_pipelines = max_pipelines
        self.pipelines: dict[str, PipelineRun] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, pipeline_execution_id: str) -> PipelineRun | None:
        return self.pipelines.get(pipeline_execution_id)

    def start(self, nodes: list[NodeRun]) -> PipelineRun:
        forget_oldest_finished(self.pipelines, self.max_pipelines - 1, lambda old: old.finished.is_set())
        run = PipelineRun(new_ulid(), nodes)
        self.pipelines[run.pipeline_execution_id] = run
        task = asyncio.get_running_loop().create_task(self._run(run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _submit(self, node: NodeRun) -> Execution:
        spec = node.spec
        execution = self.executions.submit(
            spec.query_id, node.sql, spec.performance, node.duration, materialize_view=spec.view_name
        )
        view = self.catalog.views.get(spec.view_name or "")
        if view is not None:
            view.last_execution_id = execution.execution_id
        return execution

    async def _run(self, run: PipelineRun) -> None:
        by_id = {node.spec.node_id: node for node in run.nodes}
        running: dict[asyncio.Task[bool], NodeRun] = {}
        while True:
            for node in run.nodes:
                if (
                    node.execution is None
                    and not node.skipped
                    and all(by_id[dep].status == "completed" for dep in node.spec.dependencies)
                ):
                    node.execution = self._submit(node)
                    running[asyncio.ensure_future(node.execution.finished.wait())] = node
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                node = running.pop(finished)
                if node.status != "completed":
                    _skip_downstream(run.nodes, node.spec.node_id)
        self._finish(run)

    @staticmethod
    def _finish(run: PipelineRun) -> None:
        failed = [node for node in run.nodes if node.status == "failed"]
        cancelled = [node for node in run.nodes if node.status == "cancelled"]
        if failed:
            run.final_status = PIPELINE_FAILED
            run.error = "; ".join(f"{node.spec.describe()} failed: {node.error}" for node in failed)
        elif cancelled:
            run.final_status = PIPELINE_CANCELLED
            run.error = "; ".join(f"{node.spec.describe()} was cancelled" for node in cancelled)
        else:
            run.final_status = PIPELINE_COMPLETED
        run.finished.set()


def _skip_downstream(nodes: list[NodeRun], node_id: int) -> None:
    blocked = {node_id}
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node.execution is None and not node.skipped and blocked.intersection(node.spec.dependencies):
                node.skipped = True
                blocked.add(node.spec.node_id)
                changed = True
