"""Sensors that wait on Dune work started elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_dune.exceptions import DuneConfigurationError
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.models.dune import parse_api_time
from airflow_provider_dune.runs.dune import DuneExecutionRun, DunePipelineRun
from airflow_provider_dune.runs.latest import DuneLatestResultRun
from airflow_provider_dune.sensors.base import RemoteRunSensor
from airflow_provider_dune.validation import optional_positive_seconds

if TYPE_CHECKING:
    from airflow_provider_dune.triggers.base import TriggerWait
    from airflow_provider_dune.triggers.dune import (
        DuneExecutionTrigger,
        DuneLatestResultTrigger,
        DunePipelineTrigger,
    )


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

    def make_trigger(self, wait: TriggerWait) -> DunePipelineTrigger:
        # Imported here: only a deferring sensor needs the trigger (and its import cost).
        from airflow_provider_dune.triggers.dune import DunePipelineTrigger

        return DunePipelineTrigger(
            pipeline_execution_id=self.pipeline_execution_id,
            dune_conn_id=self.dune_conn_id,
            # The sensor did not start the pipeline: killing the sensor must not stop it.
            cancel_on_kill=False,
            **wait,
        )


class DuneExecutionSensor(RemoteRunSensor):
    """
    Waits for one Dune query execution (started by another task or outside Airflow) to end.

    ``poke`` returns False while the execution is pending or executing, True when it
    completed, and fails the task when it failed (with Dune's error type, message, line and
    column), was cancelled or expired. A truncated result (``COMPLETED_PARTIAL``) fails too
    unless ``allow_partial_results=True``; it is always logged as a warning. In deferrable
    mode the wait happens in the triggerer with :class:`DuneExecutionTrigger`. When it ends,
    XCom ``execution`` holds the state, timestamps and ``result_metadata``.

    :param execution_id: the execution to wait for. (templated)
    :param allow_partial_results: accept a truncated (``COMPLETED_PARTIAL``) result as success.
    :param dune_conn_id: the Airflow connection holding the API key.
    :param deferrable: wait in the triggerer. Defaults to ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("execution_id",)
    ui_color = "#f4603e"

    def __init__(
        self,
        *,
        execution_id: str,
        allow_partial_results: bool = False,
        dune_conn_id: str = DuneHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 10)
        super().__init__(**kwargs)
        self.execution_id = execution_id
        self.allow_partial_results = allow_partial_results
        self.dune_conn_id = dune_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> DuneHook:
        return DuneHook(self.dune_conn_id)

    def remote_run(self) -> DuneExecutionRun:
        return DuneExecutionRun(
            self.hook, str(self.execution_id), allow_partial_results=self.allow_partial_results
        )

    def make_trigger(self, wait: TriggerWait) -> DuneExecutionTrigger:
        # Imported here: only a deferring sensor needs the trigger (and its import cost).
        from airflow_provider_dune.triggers.dune import DuneExecutionTrigger

        return DuneExecutionTrigger(
            execution_id=str(self.execution_id),
            dune_conn_id=self.dune_conn_id,
            allow_partial_results=self.allow_partial_results,
            # The sensor did not start the execution: killing it must not cancel it.
            cancel_on_kill=False,
            **wait,
        )


class DuneQueryResultSensor(RemoteRunSensor):
    """
    Waits until a query's latest result is fresh, for queries Dune refreshes on its own schedule.

    Reads ``GET /v1/query/{query_id}/results`` (one row, no execution credits) every
    ``poke_interval`` and succeeds once the result ended at most ``max_age`` ago, or after
    ``newer_than``; a missing, failed or stale result keeps it waiting, up to ``timeout``. XCom
    ``latest_result`` then holds its ``execution_id``, ``execution_ended_at`` and
    ``total_row_count``, so a downstream task can copy exactly that result. In deferrable mode the
    wait happens in the triggerer (:class:`DuneLatestResultTrigger`).

    :param query_id: the query. (templated)
    :param max_age: seconds (or a ``timedelta``) the result may be old, measured at each read.
    :param newer_than: a moment the result must have ended after: a ``datetime`` or an ISO 8601
        string such as ``"{{ data_interval_end }}"``; a naive time is UTC. (templated)
    :param dune_conn_id: the Airflow connection holding the API key.
    :param deferrable: wait in the triggerer. Defaults to ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("query_id", "newer_than")
    ui_color = "#f4603e"

    def __init__(
        self,
        *,
        query_id: int | str,
        max_age: float | timedelta | None = None,
        newer_than: datetime | str | None = None,
        dune_conn_id: str = DuneHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        if (max_age is None) == (newer_than is None):
            raise DuneConfigurationError(
                "Give exactly one of max_age (how old the latest result may be) or newer_than (a "
                "moment it must have ended after)."
            )
        self.query_id = query_id
        self.max_age = optional_positive_seconds(max_age, "max_age")
        self.newer_than = newer_than
        self.dune_conn_id = dune_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> DuneHook:
        return DuneHook(self.dune_conn_id)

    def _newer_than(self) -> datetime | None:
        """The rendered ``newer_than`` as an aware UTC datetime, or a clear error."""
        value = self.newer_than
        if value is None:
            return None
        moment = value if isinstance(value, datetime) else parse_api_time(str(value))
        if moment is None:
            raise DuneConfigurationError(f"newer_than must be a datetime or an ISO 8601 time, got {value!r}.")
        return (
            moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
        )

    def remote_run(self) -> DuneLatestResultRun:
        return DuneLatestResultRun(
            self.hook, self.query_id, max_age=self.max_age, newer_than=self._newer_than()
        )

    def make_trigger(self, wait: TriggerWait) -> DuneLatestResultTrigger:
        # Imported here: only a deferring sensor needs the trigger (and its import cost).
        from airflow_provider_dune.triggers.dune import DuneLatestResultTrigger

        newer_than = self._newer_than()
        return DuneLatestResultTrigger(
            query_id=self.query_id,
            max_age_seconds=self.max_age,
            newer_than=newer_than.isoformat() if newer_than else None,
            dune_conn_id=self.dune_conn_id,
            **wait,
        )
