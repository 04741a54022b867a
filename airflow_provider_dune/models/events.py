"""The payload of the trigger event that ends a wait, built the same way on every path.

The trigger (deferred wait), the operator's in-worker wait and the sensor all reduce what
they saw to a :class:`PipelineEvent`, so a pipeline ends a task identically whichever way
the task waited.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from airflow_provider_dune.models.dune import NodeExecutionDict, PipelineStatus
from airflow_provider_dune.models.run import RunOutcome

EventStatus = Literal["success", "error", "timeout"]


class PipelineEvent(TypedDict):
    status: EventStatus
    pipeline_execution_id: str
    node_executions: list[NodeExecutionDict]
    message: str


def event_from_status(status: PipelineStatus) -> PipelineEvent:
    """The event for a terminal pipeline status."""
    succeeded = status.outcome is RunOutcome.SUCCEEDED
    return {
        "status": "success" if succeeded else "error",
        "pipeline_execution_id": status.pipeline_execution_id,
        "node_executions": status.node_dicts(),
        "message": (
            f"Dune pipeline {status.pipeline_execution_id} completed: {status.progress()}."
            if succeeded
            else status.failure_message()
        ),
    }


def error_event(pipeline_execution_id: str, message: str) -> PipelineEvent:
    """The event for a wait that could not go on (bad key, pipeline not found, API down)."""
    return {
        "status": "error",
        "pipeline_execution_id": pipeline_execution_id,
        "node_executions": [],
        "message": message,
    }


def timeout_event(pipeline_execution_id: str, waited: float, last: PipelineStatus | None) -> PipelineEvent:
    where = f" (last status {last.status!r}, {last.progress()})" if last else ""
    return {
        "status": "timeout",
        "pipeline_execution_id": pipeline_execution_id,
        "node_executions": last.node_dicts() if last else [],
        "message": (
            f"Timed out after {waited:.0f}s waiting for Dune pipeline {pipeline_execution_id}{where}."
        ),
    }
