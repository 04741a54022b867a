"""Dune API payloads as typed objects, and the decision "running, succeeded or failed".

This is the only module that reads the status responses. Everything else (hook, operators,
sensor, trigger) works with :class:`PipelineStatus` and :class:`ExecutionStatus`.

Pipelines document only ``pending``, ``executing`` and ``completed`` plus an ``error``
string, and node status strings are not documented at all. So the decision is made from
every signal we have: the pipeline state, the pipeline ``error``, each node's state and
each node's ``error``. A state we do not know never crashes anything: it counts as
"still running" and is logged once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from airflow_provider_dune.exceptions import DuneResponseError
from airflow_provider_dune.runs.outcome import RunOutcome, unknown_states

NodeType = Literal["query", "materialized_view"]

# Node states come as plain words in pipelines and as QUERY_STATE_* in executions; both
# are normalised to the lower-case word without the prefix before lookup.
_RUNNING = {"pending", "queued", "executing", "running", "scheduled", "created", "in_progress", "started"}
_SUCCEEDED = {"completed", "complete", "success", "succeeded", "done", "finished"}
_FAILED = {"failed", "failure", "error", "errored", "cancelled", "canceled", "expired", "timed_out"}
# A node that never ran because something upstream failed: terminal, but not itself the cause.
_NOT_RUN = {"skipped", "upstream_failed", "not_run"}
_PARTIAL = "completed_partial"


def normalise_state(state: str) -> str:
    s = state.strip().lower()
    return s.removeprefix("query_state_")


def node_state_outcome(state: str, *, kind: str = "pipeline node") -> RunOutcome | None:
    """Outcome of one node or execution state; ``None`` for "terminal without running" (skipped)."""
    s = normalise_state(state)
    if s in _SUCCEEDED or s == _PARTIAL:
        return RunOutcome.SUCCEEDED
    if s in _FAILED:
        return RunOutcome.FAILED
    if s in _NOT_RUN:
        return None
    if s not in _RUNNING:
        unknown_states.note(kind, state)
    return RunOutcome.RUNNING


class NodeExecutionDict(TypedDict):
    """The shape of one entry of the ``node_executions`` XCom."""

    node_id: int
    type: NodeType
    query_id: int | None
    name: str | None
    execution_id: str | None
    status: str
    error: str | None


@dataclass(frozen=True)
class NodeExecution:
    """One node of a pipeline execution: a query execution or a materialized view refresh."""

    node_id: int
    type: NodeType
    status: str
    query_id: int | None = None
    name: str | None = None
    execution_id: str | None = None
    error: str | None = None

    @property
    def outcome(self) -> RunOutcome | None:
        """RUNNING, SUCCEEDED, FAILED, or ``None`` when the node was skipped."""
        if self.error:
            return RunOutcome.FAILED
        return node_state_outcome(self.status)

    @property
    def label(self) -> str:
        """How a person recognises the node: ``node 2 (query 1234)`` / ``node 1 (view dune.x.y)``."""
        what = f"query {self.query_id}" if self.type == "query" else f"materialized view {self.name}"
        return f"node {self.node_id} ({what})"

    def to_dict(self) -> NodeExecutionDict:
        return {
            "node_id": self.node_id,
            "type": self.type,
            "query_id": self.query_id,
            "name": self.name,
            "execution_id": self.execution_id,
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True)
class PipelineStatus:
    """The answer of ``GET /v1/pipelines/executions/{id}/status``."""

    pipeline_execution_id: str
    status: str
    error: str | None = None
    nodes: tuple[NodeExecution, ...] = field(default_factory=tuple)

    @property
    def failed_nodes(self) -> tuple[NodeExecution, ...]:
        return tuple(n for n in self.nodes if n.outcome is RunOutcome.FAILED)

    @property
    def outcome(self) -> RunOutcome:
        state = normalise_state(self.status)
        nodes_done = all(n.outcome is not RunOutcome.RUNNING for n in self.nodes)
        if self.error or state in _FAILED:
            return RunOutcome.FAILED
        if state in _SUCCEEDED or state == _PARTIAL:
            return RunOutcome.FAILED if self.failed_nodes else RunOutcome.SUCCEEDED
        if state not in _RUNNING:
            unknown_states.note("pipeline", self.status)
            # An unknown pipeline state with every node finished and one failed is a
            # failure we can prove; anything else keeps waiting.
            if self.nodes and nodes_done and self.failed_nodes:
                return RunOutcome.FAILED
        return RunOutcome.RUNNING

    @property
    def is_terminal(self) -> bool:
        return self.outcome.is_terminal

    def progress(self) -> str:
        """``2/3 nodes done`` — one short line for the task log."""
        done = sum(1 for n in self.nodes if n.outcome is not RunOutcome.RUNNING)
        return f"{done}/{len(self.nodes)} nodes done"

    def failure_message(self) -> str:
        """Names the pipeline, each failed node, its query id or view name, and Dune's error."""
        lines = [f"Dune pipeline {self.pipeline_execution_id} failed (status {self.status!r})."]
        for node in self.failed_nodes:
            detail = node.error or f"state {node.status}"
            exec_part = f", execution {node.execution_id}" if node.execution_id else ""
            lines.append(f"  {node.label}{exec_part} failed: {detail}")
        # The pipeline-level error usually restates a node's; show it only when no node explains.
        if self.error and not any(n.error for n in self.failed_nodes):
            lines.append(f"  Dune says: {self.error}")
        return "\n".join(lines)

    def node_dicts(self) -> list[NodeExecutionDict]:
        return [n.to_dict() for n in self.nodes]


@dataclass(frozen=True)
class ExecutionError:
    """``error`` of a failed execution: type, message, and where in the SQL when Dune says."""

    type: str | None
    message: str
    line: int | None = None
    column: int | None = None

    def describe(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        kind = f"{self.type}: " if self.type else ""
        return f"{kind}{self.message}{where}"

    def position(self) -> str:
        """``FAILED_TYPE_EXECUTION_FAILED at line 3, column 3``, or "" when Dune gave neither."""
        where = f"at line {self.line}, column {self.column}" if self.line is not None else ""
        return " ".join(p for p in (self.type or "", where) if p)


@dataclass(frozen=True)
class ExecutionStatus:
    """The answer of ``GET /v1/execution/{id}/status``."""

    execution_id: str
    state: str
    query_id: int | None = None
    is_execution_finished: bool | None = None
    submitted_at: str | None = None
    execution_started_at: str | None = None
    execution_ended_at: str | None = None
    error: ExecutionError | None = None
    result_metadata: Mapping[str, Any] | None = None

    @property
    def outcome(self) -> RunOutcome:
        outcome = node_state_outcome(self.state, kind="query execution")
        if outcome is None:
            return RunOutcome.FAILED
        if outcome is RunOutcome.RUNNING and self.is_execution_finished:
            # Dune says it is finished but we do not know the state: not a success we can vouch for.
            return RunOutcome.FAILED if self.error else RunOutcome.RUNNING
        return outcome


# --------------------------------------------------------------------------- parsing


def _require_mapping(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise DuneResponseError(
            f"Unexpected {what} response from Dune: expected a JSON object, got {type(payload).__name__}."
        )
    return payload


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _error_text(value: Any) -> str | None:
    """Node errors are documented as strings; accept an object with a message too."""
    if isinstance(value, Mapping):
        return _opt_str(value.get("message")) or _opt_str(value.get("error")) or _opt_str(dict(value))
    return _opt_str(value)


def _parse_node(raw: Any, index: int) -> NodeExecution:
    node = _require_mapping(raw, f"pipeline node #{index}")
    node_id = _opt_int(node.get("id", node.get("node_id")))
    if node_id is None:
        node_id = index
    query = node.get("query_execution_status")
    view = node.get("materialized_view_refresh_status")
    if isinstance(view, Mapping):
        return NodeExecution(
            node_id=node_id,
            type="materialized_view",
            status=_opt_str(view.get("status")) or _opt_str(node.get("status")) or "unknown",
            name=_opt_str(view.get("name")),
            query_id=_opt_int(view.get("query_id")),
            execution_id=_opt_str(view.get("execution_id")),
            error=_error_text(view.get("error")),
        )
    query = query if isinstance(query, Mapping) else {}
    return NodeExecution(
        node_id=node_id,
        type="query",
        status=_opt_str(query.get("status")) or _opt_str(node.get("status")) or "unknown",
        query_id=_opt_int(query.get("query_id")),
        execution_id=_opt_str(query.get("execution_id")),
        error=_error_text(query.get("error")) or _error_text(node.get("error")),
    )


def parse_pipeline_status(pipeline_execution_id: str, payload: Any) -> PipelineStatus:
    """Turn the JSON body of the pipeline status endpoint into a :class:`PipelineStatus`."""
    body = _require_mapping(payload, "pipeline status")
    status = body.get("status")
    if not isinstance(status, str) or not status:
        raise DuneResponseError(
            f"Dune's status of pipeline {pipeline_execution_id} has no 'status' field "
            f"(got keys: {sorted(body)[:10]})."
        )
    raw_nodes = body.get("node_executions") or []
    if not isinstance(raw_nodes, list):
        raise DuneResponseError(
            f"Dune's status of pipeline {pipeline_execution_id}: 'node_executions' is "
            f"{type(raw_nodes).__name__}, expected a list."
        )
    return PipelineStatus(
        pipeline_execution_id=pipeline_execution_id,
        status=status,
        error=_error_text(body.get("error")),
        nodes=tuple(_parse_node(n, i) for i, n in enumerate(raw_nodes)),
    )


def parse_execution_status(execution_id: str, payload: Any) -> ExecutionStatus:
    """Turn the JSON body of ``/v1/execution/{id}/status`` into an :class:`ExecutionStatus`."""
    body = _require_mapping(payload, "execution status")
    state = body.get("state")
    if not isinstance(state, str) or not state:
        raise DuneResponseError(
            f"Dune's status of execution {execution_id} has no 'state' field (got keys: {sorted(body)[:10]})."
        )
    error: ExecutionError | None = None
    raw_error = body.get("error")
    if isinstance(raw_error, Mapping):
        raw_meta = raw_error.get("metadata")
        meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
        error = ExecutionError(
            type=_opt_str(raw_error.get("type")),
            message=_opt_str(raw_error.get("message")) or "no message",
            line=_opt_int(meta.get("line")),
            column=_opt_int(meta.get("column")),
        )
    elif raw_error:
        error = ExecutionError(type=None, message=str(raw_error))
    metadata = body.get("result_metadata")
    finished = body.get("is_execution_finished")
    return ExecutionStatus(
        execution_id=_opt_str(body.get("execution_id")) or execution_id,
        state=state,
        query_id=_opt_int(body.get("query_id")),
        is_execution_finished=finished if isinstance(finished, bool) else None,
        submitted_at=_opt_str(body.get("submitted_at")),
        execution_started_at=_opt_str(body.get("execution_started_at")),
        execution_ended_at=_opt_str(body.get("execution_ended_at")),
        error=error,
        result_metadata=metadata if isinstance(metadata, Mapping) else None,
    )


@dataclass(frozen=True)
class ResultPage:
    """One page of ``GET /v1/execution/{id}/results``."""

    execution_id: str
    rows: list[dict[str, Any]]
    column_names: list[str]
    next_offset: int | None = None
    total_row_count: int | None = None


def parse_result_page(execution_id: str, payload: Any) -> ResultPage:
    body = _require_mapping(payload, "results")
    result = body.get("result")
    if not isinstance(result, Mapping):
        raise DuneResponseError(f"Dune's results of execution {execution_id} have no 'result' object.")
    rows = result.get("rows") or []
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise DuneResponseError(
            f"Dune's results of execution {execution_id}: 'rows' is not a list of objects."
        )
    meta = result.get("metadata") if isinstance(result.get("metadata"), Mapping) else {}
    columns = meta.get("column_names") if isinstance(meta, Mapping) else None
    return ResultPage(
        execution_id=execution_id,
        rows=[dict(r) for r in rows],
        column_names=[str(c) for c in columns] if isinstance(columns, list) else [],
        next_offset=_opt_int(body.get("next_offset")),
        total_row_count=_opt_int(meta.get("total_row_count")) if isinstance(meta, Mapping) else None,
    )
