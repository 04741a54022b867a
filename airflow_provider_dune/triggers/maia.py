"""Deferred waiting on Maia pipeline executions, in the triggerer's event loop."""

from __future__ import annotations

from typing import Any

from airflow_provider_dune.hooks.maia import MaiaHook
from airflow_provider_dune.runs.maia import MaiaPipelineRun
from airflow_provider_dune.triggers.base import RemoteRunTrigger


class MaiaPipelineTrigger(RemoteRunTrigger):
    """
    Polls a Maia pipeline execution until it ends, then fires one event.

    The event payload is ``{"status": "success" | "error" | "timeout", "pipeline_execution_id",
    "project_id", "pipeline_status", "message"}``, where ``pipeline_status`` is Maia's own
    status string. The trigger keeps no state beyond its arguments, so after a triggerer
    restart it simply carries on. Neither the client secret nor a token is ever among its
    arguments: the hook reads the connection asynchronously and shares one cached token with
    every other Maia trigger of the triggerer.

    :param project_id: the Maia project the execution belongs to.
    :param pipeline_execution_id: the execution to watch.
    :param maia_conn_id: the Airflow connection holding the client id and secret.
    :param poll_interval: seconds between status reads (stretched while Maia answers 429).
    :param end_time: epoch seconds after which the wait ends with a ``timeout`` event.
    :param fire_not_before: epoch seconds before which the end event is held back (set by the
        deferring task; guards an Airflow scheduler race, see docs/reliability.md).
    :param fail_on_skipped: end with an ``error`` event when Maia reports ``SKIPPED``.
    :param cancel_on_kill: cancel the execution when a user kills the deferred task (mark
        failed/success, clear). False when the waiting task did not start it.
    """

    def __init__(
        self,
        project_id: str,
        pipeline_execution_id: str,
        maia_conn_id: str = MaiaHook.default_conn_name,
        poll_interval: float = 10,
        end_time: float | None = None,
        fire_not_before: float | None = None,
        fail_on_skipped: bool = False,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__(
            poll_interval=poll_interval,
            end_time=end_time,
            cancel_on_kill=cancel_on_kill,
            fire_not_before=fire_not_before,
        )
        self.project_id = project_id
        self.pipeline_execution_id = pipeline_execution_id
        self.maia_conn_id = maia_conn_id
        self.fail_on_skipped = fail_on_skipped

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "project_id": self.project_id,
                "pipeline_execution_id": self.pipeline_execution_id,
                "maia_conn_id": self.maia_conn_id,
                "fail_on_skipped": self.fail_on_skipped,
                **self.wait_kwargs(),
            },
        )

    def remote_run(self) -> MaiaPipelineRun:
        return MaiaPipelineRun(
            MaiaHook(self.maia_conn_id),
            self.project_id,
            self.pipeline_execution_id,
            fail_on_skipped=self.fail_on_skipped,
        )
