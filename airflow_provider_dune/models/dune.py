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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Literal, TypedDict

from airflow_provider_dune.exceptions import DuneConfigurationError, DuneResponseError
from airflow_provider_dune.runs.outcome import RunOutcome, unknown_states
from airflow_provider_dune.validation import log_safe

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

    # Outcomes are cached_property (computed once per parsed status, several reads per poll):
    # frozen dataclasses still allow it, as it writes the instance __dict__ directly.
    node_id: int
    type: NodeType
    query_id: int | None
    name: str | None
    execution_id: str | None
    status: str
    error: str | None
    # Dune's execution_cost_credits of the node's execution, once it has finished and been read.
    credits: float | None


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

    @cached_property
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

    def to_dict(self, credits: float | None = None) -> NodeExecutionDict:
        return {
            "node_id": self.node_id,
            "type": self.type,
            "query_id": self.query_id,
            "name": self.name,
            "execution_id": self.execution_id,
            "status": self.status,
            "error": self.error,
            "credits": credits,
        }


@dataclass(frozen=True)
class PipelineStatus:
    """The answer of ``GET /v1/pipelines/executions/{id}/status``."""

    pipeline_execution_id: str
    status: str
    error: str | None = None
    nodes: tuple[NodeExecution, ...] = field(default_factory=tuple)

    @cached_property
    def failed_nodes(self) -> tuple[NodeExecution, ...]:
        return tuple(n for n in self.nodes if n.outcome is RunOutcome.FAILED)

    @cached_property
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

    def node_dicts(self, credits: Mapping[str, float | None] | None = None) -> list[NodeExecutionDict]:
        """The ``node_executions`` XCom; ``credits`` maps execution ids to what each cost."""
        credits = credits or {}
        return [n.to_dict(credits.get(n.execution_id or "")) for n in self.nodes]


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
    expires_at: str | None = None
    cancelled_at: str | None = None
    # What the execution cost; Dune reports it once the execution has finished.
    execution_cost_credits: float | None = None

    @property
    def outcome(self) -> RunOutcome:
        outcome = node_state_outcome(self.state, kind="query execution")
        if outcome is None:
            return RunOutcome.FAILED
        if outcome is RunOutcome.RUNNING and self.is_execution_finished:
            # Dune says it is finished but we do not know the state: not a success we can vouch for.
            return RunOutcome.FAILED if self.error else RunOutcome.RUNNING
        return outcome

    @property
    def is_partial(self) -> bool:
        """``QUERY_STATE_COMPLETED_PARTIAL``: finished, but the result was truncated (too large)."""
        return normalise_state(self.state) == _PARTIAL

    def decide(self, *, allow_partial_results: bool = False) -> RunOutcome:
        """The outcome of a single execution waited on by a task.

        A partial result is a success only when the user said partial results are fine:
        otherwise a downstream task would silently work on a truncated table.
        """
        if self.is_partial and not allow_partial_results:
            return RunOutcome.FAILED
        return self.outcome

    @property
    def metadata(self) -> ResultMetadata | None:
        return parse_result_metadata(self.result_metadata)

    def label(self) -> str:
        query = f" (query {self.query_id})" if self.query_id else ""
        return f"Dune execution {self.execution_id}{query}"

    def summary(self) -> str:
        """``QUERY_STATE_COMPLETED, 1,234 rows, 10 credits`` for the task log."""
        meta = self.metadata
        rows = meta.total_row_count if meta else None
        cost = self.execution_cost_credits if self.is_execution_finished else None
        return (
            self.state
            + (f", {rows:,} rows" if rows is not None else "")
            + (f", {cost:g} credits" if cost is not None else "")
        )

    def partial_warning(self) -> str:
        return (
            f"{self.label()} completed with a PARTIAL result: Dune truncated it because it was too "
            "large, so the rows you read are not all the rows the query produced."
        )

    def end_message(self, *, allow_partial_results: bool = False) -> str:
        """What ends the task: a success note, or why it failed in words a person can act on."""
        state = normalise_state(self.state)
        if self.is_partial:
            if allow_partial_results:
                return self.partial_warning()
            return (
                f"{self.partial_warning()} Failing because allow_partial_results is False; set "
                "allow_partial_results=True to accept a truncated result, or reduce what the query returns."
            )
        if self.decide(allow_partial_results=allow_partial_results) is RunOutcome.SUCCEEDED:
            return f"{self.label()} completed: {self.summary()}."
        if state in ("canceled", "cancelled"):
            return f"{self.label()} was cancelled."
        if state == "expired":
            return f"{self.label()} expired: its result is no longer available on Dune."
        if self.error is not None:
            return f"{self.label()} failed: {self.error.describe()}"
        return f"{self.label()} failed (state {self.state})."

    def to_dict(self) -> dict[str, Any]:
        """The ``execution`` XCom: the status in the API's own shape, so it parses back the same."""
        body: dict[str, Any] = {
            "execution_id": self.execution_id,
            "query_id": self.query_id,
            "state": self.state,
            "is_execution_finished": self.is_execution_finished,
            "submitted_at": self.submitted_at,
            "execution_started_at": self.execution_started_at,
            "execution_ended_at": self.execution_ended_at,
            "expires_at": self.expires_at,
            "cancelled_at": self.cancelled_at,
            "result_metadata": dict(self.result_metadata) if self.result_metadata is not None else None,
            "execution_cost_credits": self.execution_cost_credits,
            "error": None,
        }
        if self.error is not None:
            body["error"] = {
                "type": self.error.type,
                "message": self.error.message,
                "metadata": {"line": self.error.line, "column": self.error.column},
            }
        return body


@dataclass(frozen=True)
class ResultMetadata:
    """``result_metadata`` of a finished execution: size and shape of its result."""

    column_names: tuple[str, ...] = ()
    column_types: tuple[str, ...] = ()
    row_count: int | None = None
    total_row_count: int | None = None
    datapoint_count: int | None = None
    result_set_bytes: int | None = None
    total_result_set_bytes: int | None = None
    execution_time_millis: int | None = None
    pending_time_millis: int | None = None


def parse_result_metadata(raw: Any) -> ResultMetadata | None:
    if not isinstance(raw, Mapping):
        return None
    names, types = raw.get("column_names"), raw.get("column_types")
    return ResultMetadata(
        column_names=tuple(str(c) for c in names) if isinstance(names, list) else (),
        column_types=tuple(str(c) for c in types) if isinstance(types, list) else (),
        row_count=_opt_int(raw.get("row_count")),
        total_row_count=_opt_int(raw.get("total_row_count", raw.get("row_count"))),
        datapoint_count=_opt_int(raw.get("datapoint_count")),
        result_set_bytes=_opt_int(raw.get("result_set_bytes")),
        total_result_set_bytes=_opt_int(raw.get("total_result_set_bytes")),
        execution_time_millis=_opt_int(raw.get("execution_time_millis")),
        pending_time_millis=_opt_int(raw.get("pending_time_millis")),
    )


# --------------------------------------------------------------------------- parsing


def _require_mapping(payload: Any, what: str) -> Mapping[str, Any]:
    # JSON objects decode to dict: the exact-type check keeps the ABC check off the poll path.
    if type(payload) is dict:
        return payload
    if not isinstance(payload, Mapping):
        raise DuneResponseError(
            f"Unexpected {what} response from Dune: expected a JSON object, got {type(payload).__name__}."
        )
    return payload


def _opt_str(value: Any) -> str | None:
    """A text field of Dune's answer, escaped for the log: names, states and errors end up in
    task log lines, and a newline sent by the server would start a line that looks like ours."""
    if value is None or value == "":
        return None
    return log_safe(value if isinstance(value, str) else str(value))


def _opt_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


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
    node = raw if type(raw) is dict else _require_mapping(raw, f"pipeline node #{index}")
    node_id = _opt_int(node.get("id", node.get("node_id")))
    if node_id is None:
        node_id = index
    query = node.get("query_execution_status")
    view = node.get("materialized_view_refresh_status")
    if isinstance(view, dict):
        return NodeExecution(
            node_id=node_id,
            type="materialized_view",
            status=_opt_str(view.get("status")) or _opt_str(node.get("status")) or "unknown",
            name=_opt_str(view.get("name")),
            query_id=_opt_int(view.get("query_id")),
            execution_id=_opt_str(view.get("execution_id")),
            error=_error_text(view.get("error")),
        )
    query = query if isinstance(query, dict) else {}
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
        error = ExecutionError(type=None, message=log_safe(str(raw_error)))
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
        expires_at=_opt_str(body.get("expires_at")),
        cancelled_at=_opt_str(body.get("cancelled_at")),
        execution_cost_credits=_opt_number(body.get("execution_cost_credits")),
    )


@dataclass(frozen=True)
class ResultPage:
    """One page of ``GET /v1/execution/{id}/results`` (or of a query's latest result).

    ``execution_id`` is the execution the rows come from; ``state``, ``execution_ended_at`` and
    ``total_row_count`` tell which result it is, when it was made and how big it is whole.
    """

    execution_id: str
    rows: list[dict[str, Any]]
    column_names: list[str]
    next_offset: int | None = None
    total_row_count: int | None = None
    next_uri: str | None = None
    column_types: list[str] = field(default_factory=list)
    query_id: int | None = None
    state: str | None = None
    execution_ended_at: str | None = None

    def ended_at(self) -> datetime | None:
        """When the execution behind this result ended, as an aware UTC datetime."""
        return parse_api_time(self.execution_ended_at)

    @property
    def is_complete(self) -> bool:
        """A whole, successful result (not partial, failed or expired)."""
        return normalise_state(self.state or "") in _SUCCEEDED


def parse_api_time(text: str | None) -> datetime | None:
    """Dune's timestamps (``2024-12-20T11:04:18.724658237Z``: nanoseconds, ``Z``) as aware UTC
    datetimes; ``None`` for what does not parse."""
    if not text:
        return None
    match = _API_TIME.fullmatch(text.strip())
    if match is None:
        return None
    fraction = (match.group("fraction") or "")[:6].ljust(6, "0")
    zone = match.group("zone") or "Z"
    zone = "+00:00" if zone.upper() == "Z" else zone
    try:
        return datetime.fromisoformat(f"{match.group('base')}.{fraction}{zone}").astimezone(timezone.utc)
    except ValueError:
        return None


_API_TIME = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?(?P<zone>Z|z|[+-]\d{2}:\d{2})?"
)


def _column_types(meta: Any) -> list[str]:
    types = meta.get("column_types") if isinstance(meta, Mapping) else None
    return [str(c) for c in types] if isinstance(types, list) else []


def parse_result_page(execution_id: str, payload: Any) -> ResultPage:
    body = _require_mapping(payload, "results")
    result = body.get("result")
    if not isinstance(result, Mapping):
        raise DuneResponseError(f"Dune's results of execution {execution_id} have no 'result' object.")
    rows = result.get("rows") or []
    # Pages hold up to tens of thousands of rows: checking the first one is enough to catch a
    # wrong shape without a per-row cost on the hot path of a results export.
    if not isinstance(rows, list) or (rows and not isinstance(rows[0], dict)):
        raise DuneResponseError(
            f"Dune's results of execution {execution_id}: 'rows' is not a list of objects."
        )
    meta = result.get("metadata") if isinstance(result.get("metadata"), Mapping) else {}
    columns = meta.get("column_names") if isinstance(meta, Mapping) else None
    return ResultPage(
        execution_id=_opt_str(body.get("execution_id")) or execution_id,
        rows=rows,
        column_names=[str(c) for c in columns] if isinstance(columns, list) else [],
        next_offset=_opt_int(body.get("next_offset")),
        total_row_count=_opt_int(meta.get("total_row_count")) if isinstance(meta, Mapping) else None,
        next_uri=_opt_str(body.get("next_uri")),
        column_types=_column_types(meta),
        query_id=_opt_int(body.get("query_id")),
        state=_opt_str(body.get("state")),
        execution_ended_at=_opt_str(body.get("execution_ended_at")),
    )


# --------------------------------------------------------------------------- query pipelines


@dataclass(frozen=True)
class PipelineNode:
    """One node of a query's predefined pipeline (``GET /v1/query/{id}/pipeline``)."""

    node_id: int
    type: NodeType
    dependencies: tuple[int, ...] = ()
    query_id: int | None = None
    name: str | None = None
    performance: str | None = None
    query_parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        what = f"query {self.query_id}" if self.type == "query" else f"materialized view {self.name}"
        return f"node {self.node_id} ({what})"


@dataclass(frozen=True)
class QueryPipeline:
    """The pipeline Dune runs for a query: the views it reads (upstream first), then the query."""

    query_id: int
    nodes: tuple[PipelineNode, ...]

    @property
    def view_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes if n.type == "materialized_view" and n.name)


def _parse_pipeline_node(raw: Any, index: int) -> PipelineNode:
    node = _require_mapping(raw, f"pipeline node #{index}")
    node_id = _opt_int(node.get("id"))
    deps = node.get("dependencies") or []
    dependencies = (
        tuple(d for d in (_opt_int(x) for x in deps) if d is not None) if isinstance(deps, list) else ()
    )
    view = node.get("materialized_view_refresh")
    if isinstance(view, Mapping):
        return PipelineNode(
            node_id=index + 1 if node_id is None else node_id,
            type="materialized_view",
            dependencies=dependencies,
            name=_opt_str(view.get("name")),
            query_id=_opt_int(view.get("query_id")),
            performance=_opt_str(view.get("performance")),
        )
    query = node.get("query_execution")
    query = query if isinstance(query, dict) else {}
    params = query.get("query_parameters")
    return PipelineNode(
        node_id=index + 1 if node_id is None else node_id,
        type="query",
        dependencies=dependencies,
        query_id=_opt_int(query.get("query_id")),
        performance=_opt_str(query.get("performance")),
        query_parameters=dict(params) if isinstance(params, Mapping) else {},
    )


def parse_query_pipeline(query_id: int, payload: Any) -> QueryPipeline:
    body = _require_mapping(payload, "query pipeline")
    pipeline = body.get("pipeline")
    raw_nodes = pipeline.get("nodes") if isinstance(pipeline, Mapping) else body.get("nodes")
    if not isinstance(raw_nodes, list):
        raise DuneResponseError(f"Dune's pipeline of query {query_id} has no 'pipeline.nodes' list.")
    return QueryPipeline(
        query_id=_opt_int(body.get("query_id")) or query_id,
        nodes=tuple(_parse_pipeline_node(n, i) for i, n in enumerate(raw_nodes)),
    )


def refreshed_view_names(nodes: Any) -> list[str]:
    """Names of the materialized views a finished pipeline refreshed, from its ``node_executions``."""
    names = []
    for raw in nodes or []:
        if not isinstance(raw, Mapping) or raw.get("type") != "materialized_view" or not raw.get("name"):
            continue
        if node_state_outcome(str(raw.get("status") or "")) is RunOutcome.SUCCEEDED and not raw.get("error"):
            names.append(str(raw["name"]))
    return names


def find_node_execution(nodes: Any, *, node_id: int | None = None, query_id: int | None = None) -> str:
    """The execution id of one pipeline node, picked by node id or by query id, or a clear error."""
    if (node_id is None) == (query_id is None):
        raise DuneConfigurationError("Give exactly one of node_id or query_id to pick a pipeline node.")
    entries = [n for n in nodes or [] if isinstance(n, Mapping)]
    if node_id is not None:
        matches = [n for n in entries if _opt_int(n.get("node_id")) == _opt_int(node_id)]
        what = f"node {node_id}"
    else:
        wanted = _opt_int(query_id)
        matches = [n for n in entries if n.get("type") == "query" and _opt_int(n.get("query_id")) == wanted]
        what = f"query {query_id}"
    known = ", ".join(
        f"node {n.get('node_id')} ({n.get('type')} {n.get('query_id') or n.get('name')})" for n in entries
    )
    if not matches:
        raise DuneConfigurationError(f"The pipeline has no {what}; its nodes are: {known or 'none'}.")
    if len(matches) > 1:
        raise DuneConfigurationError(f"The pipeline runs {what} more than once; pick the node by node_id.")
    execution_id = matches[0].get("execution_id")
    if not execution_id:
        raise DuneConfigurationError(f"Pipeline {what} has no execution id (it never ran).")
    return str(execution_id)


# --------------------------------------------------------------------------- materialized views

FULL_VIEW_NAME = re.compile(r"dune\.[a-z0-9_]+\.result_[a-z0-9_]+")
_SHORT_VIEW_NAME = re.compile(r"result_[a-z0-9_]+")
_CRON_FIELDS = 5


def check_full_view_name(name: Any) -> str:
    """A view's full name ``dune.<team>.result_<name>``, as Dune's read and delete take it."""
    text = name.strip().lower() if isinstance(name, str) else ""
    if not FULL_VIEW_NAME.fullmatch(text):
        raise DuneConfigurationError(
            f"{name!r} is not a full materialized view name; Dune reads and deletes views by "
            "dune.<team>.result_<name>, e.g. dune.my_team.result_daily_volume."
        )
    return text


def check_short_view_name(name: Any) -> str:
    """The name an upsert takes: ``result_<name>``, created in the key's own namespace."""
    text = name.strip().lower() if isinstance(name, str) else ""
    if FULL_VIEW_NAME.fullmatch(text):
        raise DuneConfigurationError(
            f"Give the upsert the short name {text.split('.', 2)[2]!r}, not {name!r}: Dune creates "
            "a view only in your own namespace, as dune.<your team>.<name>."
        )
    if not _SHORT_VIEW_NAME.fullmatch(text):
        raise DuneConfigurationError(
            f"{name!r} is not a materialized view name; Dune's start with result_ and hold letters, "
            "digits and underscores, e.g. result_daily_volume."
        )
    return text


def check_cron_expression(value: Any) -> str:
    if not isinstance(value, str) or len(value.split()) != _CRON_FIELDS:
        raise DuneConfigurationError(
            f"cron_expression must have 5 fields (minute hour day month weekday), got {value!r}; "
            "Dune refreshes at most every 15 minutes and at least weekly."
        )
    return value


@dataclass(frozen=True)
class MaterializedView:
    """A materialized view as ``GET /v1/materialized-views[/{name}]`` describes it.

    ``name`` is the full name (Dune's ``sql_id``): what SQL reads and what read and delete take.
    The list leaves out ``last_execution_ids`` (newest first) and the owner ids.
    """

    name: str
    id: str | None = None
    query_id: int | None = None
    is_private: bool | None = None
    table_size_bytes: int | None = None
    last_execution_ids: tuple[str, ...] = ()
    owner_team_id: int | None = None
    owner_user_id: int | None = None


def parse_materialized_view(payload: Any) -> MaterializedView:
    body = _require_mapping(payload, "materialized view")
    name = _opt_str(body.get("sql_id"))
    if not name:
        raise DuneResponseError(
            f"Dune's materialized view has no 'sql_id' (its full name); got keys: {sorted(body)[:10]}."
        )
    private = body.get("is_private")
    executions = body.get("last_execution_ids")
    return MaterializedView(
        name=name,
        id=_opt_str(body.get("id")),
        query_id=_opt_int(body.get("query_id")),
        is_private=private if isinstance(private, bool) else None,
        table_size_bytes=_opt_int(body.get("table_size_bytes")),
        last_execution_ids=tuple(str(e) for e in executions) if isinstance(executions, list) else (),
        owner_team_id=_opt_int(body.get("owner_team_id")),
        owner_user_id=_opt_int(body.get("owner_user_id")),
    )


@dataclass(frozen=True)
class MaterializedViewPage:
    views: tuple[MaterializedView, ...]
    next_offset: int | None = None


def parse_materialized_view_page(payload: Any) -> MaterializedViewPage:
    body = _require_mapping(payload, "materialized views")
    raw = body.get("materialized_views")
    if not isinstance(raw, list):
        raise DuneResponseError("Dune's list of materialized views has no 'materialized_views' list.")
    return MaterializedViewPage(
        views=tuple(parse_materialized_view(v) for v in raw), next_offset=_opt_int(body.get("next_offset"))
    )


@dataclass(frozen=True)
class ViewRefresh:
    """The answer of ``POST /v1/materialized-views/{name}/refresh``: the execution that rebuilds
    the view, and the view's full name (Dune's ``sql_id``)."""

    execution_id: str
    name: str


@dataclass(frozen=True)
class ViewUpsert:
    """The answer of ``POST /v1/materialized-views``: the refresh the upsert started, and the
    view's full name."""

    execution_id: str
    name: str


def _started_refresh(payload: Any, what: str) -> tuple[Mapping[str, Any], str]:
    body = _require_mapping(payload, what)
    execution_id = _opt_str(body.get("execution_id"))
    if not execution_id:
        raise DuneResponseError(
            f"Dune accepted the {what} but its answer has no 'execution_id'; a refresh may have "
            "started. Check the Dune UI before re-running."
        )
    return body, execution_id


def parse_view_refresh(name: str, payload: Any) -> ViewRefresh:
    body, execution_id = _started_refresh(payload, f"refresh of materialized view {name}")
    return ViewRefresh(execution_id=execution_id, name=_opt_str(body.get("sql_id")) or name)


def parse_view_upsert(name: str, payload: Any) -> ViewUpsert:
    body, execution_id = _started_refresh(payload, f"upsert of materialized view {name}")
    return ViewUpsert(execution_id=execution_id, name=_opt_str(body.get("name")) or name)
