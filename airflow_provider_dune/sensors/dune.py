"""Sensors that wait on Dune work started elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.runs.dune import DunePipelineRun
from airflow_provider_dune.sensors.base import RemoteRunSensor
from airflow_provider_dune.triggers.dune import DunePipelineTrigger


class DunePipelineSensor(RemoteRunSensor):
    """
    Waits for a Dune pipeline execution (started by another task or outside Airflow) to end.

    ``poke`` returns False while the pipeline runs, True when it completed, and fails the
    task, naming each failed node and its error, when it failed. In deferrable mode the
    wait happens in the triggerer with the same trigger the pipeline operator uses. When it
    ends, XCom ``node_executions`` holds every node's execution id and state.

    :param pipeline_execution_id: the pipeline to wait for. (templated)
    :param dune_conn_id: the Airflow connection holding the API key.
    :param deferrable: wait in the triggerer. Defaults to ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("pipeline_execution_id",)
    ui_color = "#f4603e"

    def __init__(
        self,
        *,
        pipeline_execution_id: str,
        dune_conn_id: str = DuneHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 10)
        super().__init__(**kwargs)
        self.pipeline_execution_id = pipeline_execution_id
        self.dune_conn_id = dune_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> DuneHook:
        return DuneHook(self.dune_conn_id)

    def remote_run(self) -> DunePipelineRun:
        return DunePipelineRun(self.hook, self.pipeline_execution_id)

    def make_trigger(self, poll_interval: float, end_time: float | None) -> DunePipelineTrigger:
        return DunePipelineTrigger(
            pipeline_execution_id=self.pipeline_execution_id,
            dune_conn_id=self.dune_conn_id,
            poll_interval=poll_interval,
            end_time=end_time,
        )
