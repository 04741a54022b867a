"""Maia pipeline executions as a :class:`RemoteRun`: everything Maia-specific the shared loop needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from airflow_provider_dune.exceptions import DuneError
from airflow_provider_dune.hooks.maia import MaiaHook
from airflow_provider_dune.links.maia import maia_execution_url
from airflow_provider_dune.models.maia import MaiaPipelineStatus
from airflow_provider_dune.runs.base import RemoteRun, RunState
from airflow_provider_dune.runs.outcome import RunOutcome

PIPELINE_STATUS_KEY = "pipeline_status"


class MaiaPipelineRun(RemoteRun):
    """One pipeline execution in one Maia project; its payload is Maia's status string.

    :param fail_on_skipped: count ``SKIPPED`` as a failure instead of a success with a warning.
    """

    kind = "Maia pipeline"
    xcom_keys = (PIPELINE_STATUS_KEY,)
    empty_payload: ClassVar[Mapping[str, Any]] = {PIPELINE_STATUS_KEY: None}

    def __init__(
        self, hook: MaiaHook, project_id: str, pipeline_execution_id: str, *, fail_on_skipped: bool = False
    ) -> None:
        self.hook = hook
        self.project_id = project_id
        self.pipeline_execution_id = pipeline_execution_id
        self.fail_on_skipped = fail_on_skipped
        self._warned_skipped = False

    @property
    def ids(self) -> dict[str, Any]:
        # The execution id first: it is what the run's label shows.
        return {"pipeline_execution_id": self.pipeline_execution_id, "project_id": self.project_id}

    def state_of(self, status: MaiaPipelineStatus) -> RunState:
        outcome = status.outcome(self.fail_on_skipped)
        if status.skipped and outcome is RunOutcome.SUCCEEDED and not self._warned_skipped:
            self._warned_skipped = True
            self.hook.log.warning(
                "%s was SKIPPED: Maia did not run it. Counted as success; set fail_on_skipped=True "
                "to fail the task instead.",
                status.label,
            )
        return RunState(
            outcome=outcome,
            summary=status.status,
            message=status.message(self.fail_on_skipped),
            payload={PIPELINE_STATUS_KEY: status.status},
        )

    def get_state(self) -> RunState:
        return self.state_of(self.hook.get_pipeline_status(self.project_id, self.pipeline_execution_id))

    async def aget_state(self) -> RunState:
        status = await self.hook.aget_pipeline_status(self.project_id, self.pipeline_execution_id)
        return self.state_of(status)

    def cancel(self) -> list[str]:
        # Read first: asking Maia to cancel a finished execution is an error, not a no-op.
        status = self.hook.get_pipeline_status(self.project_id, self.pipeline_execution_id, urgent=True)
        if status.outcome(self.fail_on_skipped) is not RunOutcome.RUNNING:
            return []
        return [self.hook.cancel_pipeline(self.project_id, self.pipeline_execution_id)]

    async def acancel(self) -> list[str]:
        status = await self.hook.aget_pipeline_status(
            self.project_id, self.pipeline_execution_id, urgent=True
        )
        if status.outcome(self.fail_on_skipped) is not RunOutcome.RUNNING:
            return []
        return [await self.hook.acancel_pipeline(self.project_id, self.pipeline_execution_id)]

    def failure_details(self, payload: Mapping[str, Any]) -> str:
        """The failing steps and Maia's message, read in the worker once the run failed."""
        if str(payload.get(PIPELINE_STATUS_KEY) or "").upper() != "FAILED":
            return ""
        try:
            details = self.hook.get_execution_details(self.project_id, self.pipeline_execution_id)
        except DuneError as exc:
            self.hook.log.warning("Could not read why %s failed: %s", self.label, exc)
            return f"  Open it in Maia: {maia_execution_url(self.pipeline_execution_id)}"
        lines = details.describe() or "  Maia's API says nothing more about this failure."
        return f"{lines}\n  Open it in Maia: {maia_execution_url(self.pipeline_execution_id)}"

    def budget_delay(self) -> float:
        return self.hook.budget_delay_seconds


def warn_if_skipped(event: Mapping[str, Any], log: Any) -> None:
    """In ``execute_complete``: the triggerer logged the SKIPPED warning; repeat it in the task's own log."""
    if event.get("status") == "success" and str(event.get(PIPELINE_STATUS_KEY) or "").upper() == "SKIPPED":
        log.warning(
            "Maia pipeline execution %s was SKIPPED: Maia did not run it. Counted as success; set "
            "fail_on_skipped=True to fail the task instead.",
            event.get("pipeline_execution_id"),
        )
