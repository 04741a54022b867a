"""Sensors that wait on Maia pipeline executions started elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_dune.hooks.maia import MaiaHook
from airflow_provider_dune.runs.maia import MaiaPipelineRun, warn_if_skipped
from airflow_provider_dune.sensors.base import RemoteRunSensor

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_dune.triggers.base import TriggerWait
    from airflow_provider_dune.triggers.maia import MaiaPipelineTrigger


class MaiaPipelineSensor(RemoteRunSensor):
    """
    Waits for a Maia pipeline execution (started by another task, a schedule or a person) to end.

    ``poke`` returns False while Maia reports ``RUNNING``, ``CANCELLING`` or ``UNKNOWN``,
    True on ``SUCCESS`` (and on ``SKIPPED``, with a warning), and fails the task on
    ``FAILED``, ``CANCELLED`` or ``FORBIDDEN``. In deferrable mode the wait happens in the
    triggerer with the same trigger the operator uses. XCom ``pipeline_status`` holds Maia's
    final status string. The sensor did not start the execution, so it never cancels it.

    :param project_id: the Maia project the execution belongs to. (templated)
    :param pipeline_execution_id: the execution to wait for. (templated)
    :param maia_conn_id: the Airflow connection holding the API client id and secret.
    :param fail_on_skipped: fail when Maia reports the execution ``SKIPPED``.
    :param deferrable: wait in the triggerer. Defaults to ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("project_id", "pipeline_execution_id")
    ui_color = "#5cc9a7"

    def __init__(
        self,
        *,
        project_id: str,
        pipeline_execution_id: str,
        maia_conn_id: str = MaiaHook.default_conn_name,
        fail_on_skipped: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 10)
        super().__init__(**kwargs)
        self.project_id = project_id
        self.pipeline_execution_id = pipeline_execution_id
        self.maia_conn_id = maia_conn_id
        self.fail_on_skipped = fail_on_skipped
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> MaiaHook:
        return MaiaHook(self.maia_conn_id)

    def remote_run(self) -> MaiaPipelineRun:
        return MaiaPipelineRun(
            self.hook, self.project_id, self.pipeline_execution_id, fail_on_skipped=self.fail_on_skipped
        )

    def make_trigger(self, wait: TriggerWait) -> MaiaPipelineTrigger:
        # Imported here: only a deferring sensor needs the trigger (and its import cost).
        from airflow_provider_dune.triggers.maia import MaiaPipelineTrigger

        return MaiaPipelineTrigger(
            project_id=self.project_id,
            pipeline_execution_id=self.pipeline_execution_id,
            maia_conn_id=self.maia_conn_id,
            fail_on_skipped=self.fail_on_skipped,
            # The sensor did not start the execution: killing the sensor must not stop it.
            cancel_on_kill=False,
            **wait,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        warn_if_skipped(event, self.log)
        super().execute_complete(context, event)
