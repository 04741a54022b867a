"""Sensors that wait on Dune work started elsewhere."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, conf

from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.models.events import event_from_status
from airflow_provider_dune.models.run import RunOutcome
from airflow_provider_dune.operators.dune import complete_pipeline_wait
from airflow_provider_dune.triggers.dune import DunePipelineTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class DunePipelineSensor(BaseSensorOperator):
    """
    Waits for a Dune pipeline execution (started by another task or outside Airflow) to end.

    ``poke`` returns False while the pipeline runs, True when it completed, and fails the
    task, naming each failed node and its error, when it failed. In deferrable mode the
    wait happens in the triggerer with the same trigger the pipeline operator uses.

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

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One cheap read first: a pipeline that already ended needs no trip to the triggerer.
        if self.poke(context):
            return None
        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else self.timeout
        self.defer(
            trigger=DunePipelineTrigger(
                pipeline_execution_id=self.pipeline_execution_id,
                dune_conn_id=self.dune_conn_id,
                poll_interval=self._poke_seconds(),
                end_time=time.time() + float(timeout) if timeout else None,
            ),
            method_name="execute_complete",
        )

    def _poke_seconds(self) -> float:
        interval = self.poke_interval
        return interval.total_seconds() if isinstance(interval, timedelta) else float(interval)

    def poke(self, context: Context) -> bool:
        status = self.hook.get_pipeline_status(self.pipeline_execution_id)
        self.log.info(
            "Dune pipeline %s: %s, %s.", status.pipeline_execution_id, status.status, status.progress()
        )
        if status.outcome is RunOutcome.RUNNING:
            return False
        complete_pipeline_wait(event_from_status(status), context, self.hook, self.log)
        return True

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        complete_pipeline_wait(event, context, self.hook, self.log)
