"""Dune runs as :class:`RemoteRun` adapters: a pipeline execution and a single query execution."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from airflow_provider_dune.exceptions import DuneError
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.models.dune import ExecutionStatus, PipelineStatus, parse_execution_status
from airflow_provider_dune.runs.base import RemoteRun, RunState
from airflow_provider_dune.runs.outcome import RunOutcome

_FAILED_NODE_STATES = ("failed", "query_state_failed")

StatusT = TypeVar("StatusT", PipelineStatus, ExecutionStatus)


class _DuneRun(RemoteRun, Generic[StatusT]):
    """What both Dune runs share: the hook, its 429 count, and one RunState per distinct status."""

    hook: DuneHook
    _last: tuple[StatusT, RunState] | None = None

    @abstractmethod
    def state_of(self, status: StatusT) -> RunState: ...

    def _state(self, status: StatusT) -> RunState:
        # The hook hands back the same status object while Dune's answer is unchanged.
        if self._last is None or self._last[0] is not status:
            self._last = (status, self.state_of(status))
        return self._last[1]

    def budget_delay(self) -> float:
        return self.hook.budget_delay_seconds


class DunePipelineRun(_DuneRun[PipelineStatus]):
    """A pipeline execution; its payload is the ``node_executions`` list."""

    kind = "Dune pipeline"
    xcom_keys = ("node_executions",)
    empty_payload: ClassVar[Mapping[str, Any]] = {"node_executions": []}

    def __init__(self, hook: DuneHook, pipeline_execution_id: str) -> None:
        self.hook = hook
        self.pipeline_execution_id = pipeline_execution_id

    @property
    def ids(self) -> dict[str, Any]:
        return {"pipeline_execution_id": self.pipeline_execution_id}

    @staticmethod
    def state_of(status: PipelineStatus) -> RunState:
        outcome = status.outcome
        if outcome is RunOutcome.SUCCEEDED:
            message = f"Dune pipeline {status.pipeline_execution_id} completed: {status.progress()}."
        elif outcome is RunOutcome.FAILED:
            message = status.failure_message()
        else:
            # Polled every few seconds by every deferred task: no message until one is needed.
            message = ""
        return RunState(
            outcome=outcome,
            summary=f"{status.status}, {status.progress()}",
            message=message,
            payload={"node_executions": status.node_dicts()},
        )

    def get_state(self) -> RunState:
        return self._state(self.hook.get_pipeline_status(self.pipeline_execution_id))

    async def aget_state(self) -> RunState:
        return self._state(await self.hook.aget_pipeline_status(self.pipeline_execution_id))

    # A cancel's reads and requests are urgent: a kill never waits behind polls for the budget.
    def cancel(self) -> list[str]:
        # Dune has no pipeline cancel endpoint: a pipeline stops when its running nodes do.
        status = self.hook.get_pipeline_status(self.pipeline_execution_id, urgent=True)
        cancelled = []
        for execution_id in _running_executions(status):
            self.hook.cancel_execution(execution_id)
            cancelled.append(execution_id)
        return cancelled

    async def acancel(self) -> list[str]:
        status = await self.hook.aget_pipeline_status(self.pipeline_execution_id, urgent=True)
        cancelled = []
        for execution_id in _running_executions(status):
            await self.hook.acancel_execution(execution_id)
            cancelled.append(execution_id)
        return cancelled

    def failure_details(self, payload: Mapping[str, Any]) -> str:
        """The error type, line and column of each failed node, read from its execution."""
        details = []
        for node in payload.get("node_executions") or []:
            failed = node.get("error") or str(node.get("status", "")).lower() in _FAILED_NODE_STATES
            if not failed or not node.get("execution_id"):
                continue
            try:
                error = self.hook.get_execution_status(node["execution_id"]).error
            except DuneError as exc:
                self.hook.log.warning(
                    "Could not read the error of execution %s: %s", node["execution_id"], exc
                )
                continue
            # The node line already carries Dune's message; add what it lacks: type and position.
            if error is not None and error.position():
                details.append(f"  node {node.get('node_id')}: {error.position()}")
        return "\n".join(details)


def _running_executions(status: PipelineStatus) -> list[str]:
    """Execution ids of the nodes still running: what cancelling a pipeline means."""
    if status.outcome is not RunOutcome.RUNNING:
        return []
    return [n.execution_id for n in status.nodes if n.outcome is RunOutcome.RUNNING and n.execution_id]


class DuneExecutionRun(_DuneRun[ExecutionStatus]):
    """One query execution (a saved query, ad-hoc SQL or a view refresh).

    Its payload is ``execution``: the status in the API's shape (state, timestamps,
    ``result_metadata``, ``error``). ``allow_partial_results`` decides whether a truncated
    result (``COMPLETED_PARTIAL``) counts as success.
    """

    kind = "Dune execution"
    xcom_keys = ("execution",)
    empty_payload: ClassVar[Mapping[str, Any]] = {"execution": {}}

    def __init__(self, hook: DuneHook, execution_id: str, *, allow_partial_results: bool = False) -> None:
        self.hook = hook
        self.execution_id = execution_id
        self.allow_partial_results = allow_partial_results

    @property
    def ids(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id}

    def state_of(self, status: ExecutionStatus) -> RunState:
        return RunState(
            outcome=status.decide(allow_partial_results=self.allow_partial_results),
            summary=status.summary(),
            message=status.end_message(allow_partial_results=self.allow_partial_results),
            payload={"execution": status.to_dict()},
        )

    def get_state(self) -> RunState:
        return self._state(self.hook.get_execution_status(self.execution_id))

    async def aget_state(self) -> RunState:
        return self._state(await self.hook.aget_execution_status(self.execution_id))

    def cancel(self) -> list[str]:
        status = self.hook.get_execution_status(self.execution_id, urgent=True)
        if status.outcome is not RunOutcome.RUNNING:
            return []
        return [self.execution_id] if self.hook.cancel_execution(self.execution_id) else []

    async def acancel(self) -> list[str]:
        status = await self.hook.aget_execution_status(self.execution_id, urgent=True)
        if status.outcome is not RunOutcome.RUNNING:
            return []
        return [self.execution_id] if await self.hook.acancel_execution(self.execution_id) else []

    @staticmethod
    def status_from_payload(payload: Mapping[str, Any]) -> ExecutionStatus | None:
        """The typed status an end event carries, or ``None`` when no status was read."""
        raw = payload.get("execution")
        if not raw:
            return None
        return parse_execution_status(str(raw.get("execution_id") or payload.get("execution_id")), raw)
