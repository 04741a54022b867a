"""Deferred waiting on Dune work, in the triggerer's event loop."""

from __future__ import annotations

from typing import Any

from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.runs.dune import DunePipelineRun
from airflow_provider_dune.triggers.base import RemoteRunTrigger


class DunePipelineTrigger(RemoteRunTrigger):
    """
    Polls a Dune pipeline execution until it finishes, then fires one event.

    The event payload is ``{"status": "success" | "error" | "timeout",
    "pipeline_execution_id", "node_executions", "message"}``. The trigger keeps no state
    beyond its arguments, so after a triggerer restart it simply carries on. The API key is
    never among its arguments: the hook looks it up from the connection, asynchronously.

    :param pipeline_execution_id: the pipeline to watch.
    :param dune_conn_id: the Airflow connection holding the API key.
    :param poll_interval: seconds between status reads (stretched while Dune answers 429).
    :param end_time: epoch seconds after which the wait ends with a ``timeout`` event.
    """

    def __init__(
        self,
        pipeline_execution_id: str,
        dune_conn_id: str = DuneHook.default_conn_name,
        poll_interval: float = 10,
        end_time: float | None = None,
    ) -> None:
        super().__init__(poll_interval=poll_interval, end_time=end_time)
        self.pipeline_execution_id = pipeline_execution_id
        self.dune_conn_id = dune_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "pipeline_execution_id": self.pipeline_execution_id,
                "dune_conn_id": self.dune_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    def remote_run(self) -> DunePipelineRun:
        return DunePipelineRun(DuneHook(self.dune_conn_id), self.pipeline_execution_id)
