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
# Id (and XCom) holding the nodes a rerun skipped because an earlier run had done them.
CARRIED_NODES_KEY = "carried_nodes"

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
    """A pipeline execution; its payload is ``node_executions`` and ``credits_used``.

    Dune's pipeline status carries no cost: what each node cost (``execution_cost_credits``) is on
    its execution's status, final once the node has finished. So each finished node's execution is
    read once, and only when needed: as nodes finish when ``max_credits`` is set (the running total
    is checked on every poll), otherwise once the pipeline has ended: by the waiting worker, or,
    for a deferred wait, by the task resuming from the trigger's event (:meth:`complete_event`).

    :param max_credits: a budget. Once the finished nodes have used more than this, every node
        still running is cancelled, and any that starts afterwards too, until the pipeline has
        ended; the run then counts as failed.
    :param carried_nodes: after a rerun of only the failed nodes, the ``node_executions`` entries
        of the nodes that had succeeded in the earlier run and were skipped: they join this run's
        ``node_executions`` (and its ids, so a retry or a trigger keeps them), so the XCom
        describes the whole pipeline and a downstream task finds every node's execution.
    :param price_at_end: read the finished nodes' cost when the pipeline ends. A trigger says
        False (unless ``max_credits`` needs the cost as nodes finish): the task resuming from its
        event reads it instead.
    """

    kind = "Dune pipeline"
    xcom_keys = ("node_executions", "credits_used")
    empty_payload: ClassVar[Mapping[str, Any]] = {"node_executions": [], "credits_used": None}

    def __init__(
        self,
        hook: DuneHook,
        pipeline_execution_id: str,
        *,
        max_credits: float | None = None,
        carried_nodes: list[dict[str, Any]] | None = None,
        price_at_end: bool = True,
    ) -> None:
        self.hook = hook
        self.pipeline_execution_id = pipeline_execution_id
        self.max_credits = max_credits
        self.carried_nodes = list(carried_nodes or [])
        self.price_at_end = price_at_end
        # Execution id -> its execution_cost_credits (None: not reported), for finished nodes.
        self.credits: dict[str, float | None] = {}
        # The finished nodes' execution statuses read for their cost: a failed one's also says
        # where its SQL failed, so failure_details need not read it again.
        self.node_statuses: dict[str, ExecutionStatus] = {}
        # Executions cancelled because the run passed max_credits.
        self.cancelled: list[str] = []

    @property
    def ids(self) -> dict[str, Any]:
        carried = {CARRIED_NODES_KEY: self.carried_nodes} if self.carried_nodes else {}
        return {"pipeline_execution_id": self.pipeline_execution_id, **carried}

    def node_dicts(self, status: PipelineStatus) -> list[dict[str, Any]]:
        """This run's nodes with their credits, and the nodes carried over from an earlier run."""
        nodes = [*self.carried_nodes, *(dict(n) for n in status.node_dicts(self.credits))]
        return sorted(nodes, key=lambda n: n.get("node_id") or 0)

    def state_of(self, status: PipelineStatus) -> RunState:
        outcome = status.outcome
        cost = self._cost_note(status)
        if outcome is RunOutcome.SUCCEEDED:
            message = f"Dune pipeline {status.pipeline_execution_id} completed: {status.progress()}{cost}."
        elif outcome is RunOutcome.FAILED:
            message = status.failure_message() + (f"\n  Cost{cost}." if cost else "")
        else:
            # Polled every few seconds by every deferred task: no message until one is needed.
            message = ""
        return RunState(
            outcome=outcome,
            summary=f"{status.status}, {status.progress()}",
            message=message,
            payload={"node_executions": self.node_dicts(status), "credits_used": self.credits_used},
        )

    @property
    def credits_used(self) -> float | None:
        """Credits of the finished nodes read so far; ``None`` until one has been read."""
        known = [c for c in self.credits.values() if c is not None]
        return round(sum(known), 6) if known else None

    def _cost_note(self, status: PipelineStatus) -> str:
        """``; 30 credits (node 1: 10, node 2: 20)``, or "" while nothing is known."""
        if self.credits_used is None:
            return ""
        per_node = ", ".join(
            f"node {n.node_id}: {_credits_text(self.credits.get(n.execution_id))}"
            for n in status.nodes
            if n.execution_id in self.credits
        )
        return f"; {_credits_text(self.credits_used)} credits ({per_node})"

    def _unpriced(self, status: PipelineStatus) -> list[str]:
        """Finished nodes whose cost has not been read yet, when their cost is wanted now."""
        if self.max_credits is None and not (self.price_at_end and status.outcome.is_terminal):
            return []
        return [
            n.execution_id
            for n in status.nodes
            if n.execution_id and n.outcome is not RunOutcome.RUNNING and n.execution_id not in self.credits
        ]

    def _over_budget(self) -> bool:
        used = self.credits_used
        return self.max_credits is not None and used is not None and used > self.max_credits

    def _budget_state(self, status: PipelineStatus, cancelled: list[str]) -> RunState:
        """Past the budget: still running while its nodes are being cancelled (a node that was
        waiting for its inputs has no execution to cancel yet), failed once the pipeline ended."""
        self.cancelled.extend(cancelled)
        payload = self._state(status).payload
        if status.outcome is RunOutcome.RUNNING:
            return RunState(
                RunOutcome.RUNNING, f"over max_credits, cancelling, {status.progress()}", "", payload
            )
        stopped = ", ".join(self.cancelled) or "none, nothing was running"
        message = (
            f"Dune pipeline {status.pipeline_execution_id} used {_credits_text(self.credits_used)} credits, "
            f"more than max_credits={_credits_text(self.max_credits)}. Cancelled the executions still "
            f"running ({stopped}); the nodes after them did not run. Done: {status.progress()}"
            f"{self._cost_note(status)}. Raise max_credits, or make the pipeline cheaper (fewer "
            "nodes, the medium tier)."
        )
        return RunState(RunOutcome.FAILED, f"over max_credits, {status.progress()}", message, payload)

    def get_state(self) -> RunState:
        status = self.hook.get_pipeline_status(self.pipeline_execution_id)
        for execution_id in self._unpriced(status):
            self.credits[execution_id] = self._read_credits(execution_id)
        if self._over_budget():
            return self._budget_state(status, self._cancel_running(status))
        return self._state(status)

    async def aget_state(self) -> RunState:
        status = await self.hook.aget_pipeline_status(self.pipeline_execution_id)
        for execution_id in self._unpriced(status):
            self.credits[execution_id] = await self._aread_credits(execution_id)
        if self._over_budget():
            return self._budget_state(status, await self._acancel_running(status))
        return self._state(status)

    def complete_event(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        """The trigger's end event with the cost it left out, read here, in the resuming task.

        A trigger does not read the cost (measured at 500 pipelines on a full Plus budget: the
        end's cost reads queued behind a whole round of other runs' polls, tripling the lag from
        a pipeline's end to its event). The pipeline has ended, so one more status read gives
        the same end state, and the cost read with it comes out of the worker's own budget.
        """
        if event.get("status") not in ("success", "error") or event.get("unreadable"):
            return event  # nothing ended that could be priced
        ran = [n for n in event.get("node_executions") or [] if n.get("execution_id")]
        if all(n.get("credits") is not None for n in ran):
            return event  # priced by the trigger, which must when max_credits is set
        try:
            state = self.get_state()
        except DuneError as exc:
            self.hook.log.warning("Could not read the cost of %s: %s", self.label, exc)
            return event
        if not state.outcome.is_terminal:
            return event
        return {**event, **state.payload, "message": state.message}

    # Not urgent: measured at 500 pipelines on a full budget, urgent cost reads burst past Dune's
    # limit (18% of reads answered 429) and the key's halved rate slowed every wait.
    def _read_credits(self, execution_id: str) -> float | None:
        try:
            status = self.hook.get_execution_status(execution_id)
        except DuneError as exc:
            self.hook.log.warning("Could not read the cost of execution %s: %s", execution_id, exc)
            return None
        self.node_statuses[execution_id] = status
        return status.execution_cost_credits

    async def _aread_credits(self, execution_id: str) -> float | None:
        try:
            status = await self.hook.aget_execution_status(execution_id)
        except DuneError as exc:
            self.hook.log.warning("Could not read the cost of execution %s: %s", execution_id, exc)
            return None
        self.node_statuses[execution_id] = status
        return status.execution_cost_credits

    # A cancel's reads and requests are urgent: a kill never waits behind polls for the budget.
    def cancel(self) -> list[str]:
        # Dune has no pipeline cancel endpoint: a pipeline stops when its running nodes do.
        return self._cancel_running(self.hook.get_pipeline_status(self.pipeline_execution_id, urgent=True))

    async def acancel(self) -> list[str]:
        return await self._acancel_running(
            await self.hook.aget_pipeline_status(self.pipeline_execution_id, urgent=True)
        )

    def _cancel_running(self, status: PipelineStatus) -> list[str]:
        cancelled = []
        for execution_id in _running_executions(status):
            self.hook.cancel_execution(execution_id)
            cancelled.append(execution_id)
        return cancelled

    async def _acancel_running(self, status: PipelineStatus) -> list[str]:
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
                known = self.node_statuses.get(node["execution_id"])
                error = (known or self.hook.get_execution_status(node["execution_id"])).error
            except DuneError as exc:
                self.hook.log.warning(
                    "Could not read the error of execution %s: %s", node["execution_id"], exc
                )
                continue
            # The node line already carries Dune's message; add what it lacks: type and position.
            if error is not None and error.position():
                details.append(f"  node {node.get('node_id')}: {error.position()}")
        return "\n".join(details)


def _credits_text(value: float | None) -> str:
    """``12`` or ``12.5``: credits as a person reads them; ``?`` when Dune did not say."""
    if value is None:
        return "?"
    return f"{value:g}"


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
    xcom_keys = ("execution", "credits_used")
    empty_payload: ClassVar[Mapping[str, Any]] = {"execution": {}, "credits_used": None}

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
            payload={"execution": status.to_dict(), "credits_used": status.execution_cost_credits},
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
