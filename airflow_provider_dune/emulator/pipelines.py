"""Pipeline executions: run validated nodes in dependency order and report their status.

Pipeline status uses Dune's documented words only: ``pending`` -> ``executing`` ->
``completed``; a pipeline that failed or was cancelled ends ``completed`` with an ``error``
string naming the nodes (the documented way to tell). Node status strings are not documented,
so the emulator speaks one of several plausible vocabularies (:data:`NODE_VOCABULARIES`,
chosen per emulator), and the client is tested under each. Internally a node is ``pending``,
``executing``, ``completed``, ``failed``, ``cancelled`` or ``skipped`` (an upstream node did
not complete, so this one never ran). Independent branches keep running after a failure; the
pipeline ends once everything that can run has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
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

PENDING, EXECUTING, COMPLETED, FAILED, CANCELLED, SKIPPED = (
    "pending",
    "executing",
    "completed",
    "failed",
    "cancelled",
    "skipped",
)
# How a node's internal state is spelled on the wire. "words" is the default; "query_state"
# borrows the execution states (no skipped state there: a node that never ran stays pending);
# "upper" is the RUNNING/SUCCESS style of other schedulers.
NODE_VOCABULARIES: Mapping[str, Mapping[str, str]] = {
    "words": {state: state for state in (PENDING, EXECUTING, COMPLETED, FAILED, CANCELLED, SKIPPED)},
    "query_state": {
        PENDING: states.PENDING,
        EXECUTING: states.EXECUTING,
        COMPLETED: states.COMPLETED,
        FAILED: states.FAILED,
        CANCELLED: states.CANCELLED,
        SKIPPED: states.PENDING,
    },
    "upper": {
        PENDING: "PENDING",
        EXECUTING: "RUNNING",
        COMPLETED: "SUCCESS",
        FAILED: "FAILED",
        CANCELLED: "CANCELLED",
        SKIPPED: "SKIPPED",
    },
}
DEFAULT_NODE_VOCABULARY = "words"

_NODE_STATE = {
    states.PENDING: PENDING,
    states.EXECUTING: EXECUTING,
    states.COMPLETED: COMPLETED,
    states.COMPLETED_PARTIAL: COMPLETED,
    states.EXPIRED: COMPLETED,
    states.FAILED: FAILED,
    states.CANCELLED: CANCELLED,
}


def vocabulary(name: str) -> Mapping[str, str]:
    """The node vocabulary called ``name``, or a clear error."""
    try:
        return NODE_VOCABULARIES[name]
    except KeyError:
        raise ValueError(
            f"unknown node vocabulary {name!r}; choose one of {', '.join(NODE_VOCABULARIES)}"
        ) from None


@dataclass
class NodeRun:
    spec: NodeSpec
    sql: str
    duration: float | None
    execution: Execution | None = None
    skipped: bool = False

    @property
    def state(self) -> str:
        """The internal state; :meth:`to_api` spells it in the pipeline's vocabulary."""
        if self.skipped:
            return SKIPPED
        if self.execution is None:
            return PENDING
        return _NODE_STATE.get(self.execution.state, EXECUTING)

    @property
    def error(self) -> str | None:
        execution = self.execution
        if execution is None:
            return None
        if execution.error is not None:
            return str(execution.error.to_api(execution.execution_id)["message"])
        if execution.state == states.CANCELLED:
            return "execution was cancelled"
        return None

    def to_api(self, vocabulary: Mapping[str, str]) -> dict[str, Any]:
        status: dict[str, Any] = {"status": vocabulary[self.state]}
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
    vocabulary: Mapping[str, str] = field(default_factory=lambda: NODE_VOCABULARIES[DEFAULT_NODE_VOCABULARY])
    error: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def status(self) -> str:
        if self.finished.is_set():
            return PIPELINE_COMPLETED
        started = any(node.execution is not None for node in self.nodes)
        return PIPELINE_EXECUTING if started else PIPELINE_PENDING

    def to_status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "node_executions": [node.to_api(self.vocabulary) for node in self.nodes],
        }
        if self.error is not None:
            body["error"] = self.error
        return body


def render_nodes(catalog: Catalog, specs: list[NodeSpec]) -> list[NodeRun]:
    """Render every node's SQL up front so a missing parameter is a 400, not a failed node later."""
    runs = []
    for spec in specs:
        query = catalog.queries[spec.query_id]
        runs.append(NodeRun(spec, query.sql_for_run(spec.query_parameters), query.execution_seconds))
    return runs


class PipelineService:
    def __init__(
        self,
        executions: ExecutionService,
        catalog: Catalog,
        node_vocabulary: Mapping[str, str] = NODE_VOCABULARIES[DEFAULT_NODE_VOCABULARY],
        max_pipelines: int = 10_000,
    ) -> None:
        self.executions = executions
        self.catalog = catalog
        self.vocabulary = node_vocabulary
        # Past this many pipeline runs, the oldest finished ones are forgotten (404 from then on).
        self.max_pipelines = max_pipelines
        self.pipelines: dict[str, PipelineRun] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, pipeline_execution_id: str) -> PipelineRun | None:
        return self.pipelines.get(pipeline_execution_id)

    def start(self, nodes: list[NodeRun]) -> PipelineRun:
        forget_oldest_finished(self.pipelines, self.max_pipelines - 1, lambda old: old.finished.is_set())
        run = PipelineRun(new_ulid(), nodes, self.vocabulary)
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
            view.record_execution(execution.execution_id)
        return execution

    async def _run(self, run: PipelineRun) -> None:
        by_id = {node.spec.node_id: node for node in run.nodes}
        running: dict[asyncio.Task[bool], NodeRun] = {}
        while True:
            for node in run.nodes:
                if (
                    node.execution is None
                    and not node.skipped
                    and all(by_id[dep].state == COMPLETED for dep in node.spec.dependencies)
                ):
                    node.execution = self._submit(node)
                    running[asyncio.ensure_future(node.execution.finished.wait())] = node
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                node = running.pop(finished)
                if node.state != COMPLETED:
                    _skip_downstream(run.nodes, node.spec.node_id)
        self._finish(run)

    @staticmethod
    def _finish(run: PipelineRun) -> None:
        failed = [node for node in run.nodes if node.state == FAILED]
        cancelled = [node for node in run.nodes if node.state == CANCELLED]
        if failed:
            run.error = "; ".join(f"{node.spec.describe()} failed: {node.error}" for node in failed)
        elif cancelled:
            run.error = "; ".join(f"{node.spec.describe()} was cancelled" for node in cancelled)
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
