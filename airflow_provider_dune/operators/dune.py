"""Operators that run Dune query pipelines."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_dune.exceptions import DuneConfigurationError
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.links.dune import DUNE_QUERY_URL, DuneQueryLink
from airflow_provider_dune.models.pipeline_spec import build_pipeline_request
from airflow_provider_dune.operators.base import RemoteRunOperatorMixin
from airflow_provider_dune.runs.base import RemoteRun
from airflow_provider_dune.runs.dune import DunePipelineRun
from airflow_provider_dune.triggers.dune import DunePipelineTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def _from_json(value: Any, name: str) -> Any:
    """A templated list or dict renders to a string unless the DAG renders native objects."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise DuneConfigurationError(
            f"{name} rendered to a string that is not JSON: {value[:200]!r}. Pass a list/dict, "
            "or set render_template_as_native_obj=True on the DAG."
        ) from None


class DuneRunPipelineOperator(RemoteRunOperatorMixin, BaseOperator):
    """
    Runs a Dune query pipeline and (by default) waits until every node has finished.

    Give exactly one of ``query_id`` or ``nodes``:

    * ``query_id``: Dune builds the pipeline from the query's lineage, refreshing every
      materialized view it reads before running it (``POST /v1/pipelines/execute``).
    * ``nodes``: an explicit pipeline, a list of
      ``{"id": 1, "dependencies": [...], "query_execution": {"query_id": ..., "query_parameters": {...}}}``
      or ``{"id": 2, "dependencies": [1], "materialized_view_refresh": {"name": "dune.team.result_x"}}``.
      The list is checked before anything is sent: unique integer ids, dependencies that
      exist, no cycles, one kind per node.

    The pipeline execution id is pushed to XCom (``pipeline_execution_id``) as soon as Dune
    returns it, and is the task's return value. When the pipeline ends, ``node_executions``
    holds one entry per node: ``node_id``, ``type``, ``query_id`` or ``name``,
    ``execution_id``, ``status`` and ``error``.

    :param query_id: the query whose lineage forms the pipeline. (templated)
    :param nodes: an explicit list of pipeline nodes. (templated)
    :param performance: engine tier, ``small``, ``medium`` or ``large``; with ``nodes`` the
        default for every node that does not set its own. (templated)
    :param query_parameters: parameters of the query, with ``query_id``. (templated)
    :param dune_conn_id: the Airflow connection holding the API key.
    :param wait_for_termination: wait for the pipeline to finish; when False the task ends
        once the pipeline has started.
    :param deferrable: wait in the triggerer instead of holding a worker slot. Defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between status reads.
    :param timeout: seconds to wait at most; ``None`` waits as long as the pipeline runs.
    :param cancel_on_kill: cancel the pipeline's running nodes when the task is killed or
        ``timeout`` ends the wait.
    """

    template_fields: Sequence[str] = ("query_id", "nodes", "query_parameters", "performance")
    template_fields_renderers = {"nodes": "json", "query_parameters": "json"}
    operator_extra_links = (DuneQueryLink(),)
    ui_color = "#f4603e"

    def __init__(
        self,
        *,
        query_id: int | str | None = None,
        nodes: list[dict[str, Any]] | str | None = None,
        performance: str = "medium",
        query_parameters: dict[str, Any] | str | None = None,
        dune_conn_id: str = DuneHook.default_conn_name,
        wait_for_termination: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10,
        timeout: float | None = None,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (query_id is None) == (nodes is None):
            raise DuneConfigurationError(
                f"{type(self).__name__} {kwargs.get('task_id', '')!r}: give exactly one of query_id "
                "(Dune builds the pipeline from the query's lineage) or nodes (an explicit pipeline)."
            )
        if poll_interval <= 0:
            raise DuneConfigurationError(f"poll_interval must be positive, got {poll_interval}.")
        if timeout is not None and timeout <= 0:
            raise DuneConfigurationError(f"timeout must be positive seconds or None, got {timeout}.")
        self.query_id = query_id
        self.nodes = nodes
        self.performance = performance
        self.query_parameters = query_parameters
        self.dune_conn_id = dune_conn_id
        self.wait_for_termination = wait_for_termination
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill
        self.pipeline_execution_id: str | None = None

    @cached_property
    def hook(self) -> DuneHook:
        return DuneHook(self.dune_conn_id)

    def execute(self, context: Context) -> str:
        run = self.run_and_wait(context)
        self.pipeline_execution_id = run.ids["pipeline_execution_id"]
        return self.pipeline_execution_id

    def submit(self, context: Context) -> DunePipelineRun:
        # Rendered templates are validated here, before any request.
        request = build_pipeline_request(
            query_id=self.query_id,
            nodes=_from_json(self.nodes, "nodes"),
            performance=self.performance,
            query_parameters=_from_json(self.query_parameters, "query_parameters"),
        )
        if "query_id" in request:
            context["ti"].xcom_push(
                key=DuneQueryLink.key, value=DUNE_QUERY_URL.format(query_id=request["query_id"])
            )
        pid = self.hook.execute_pipeline(
            query_id=request.get("query_id"),
            nodes=request.get("pipeline", {}).get("nodes"),
            performance=request.get("performance", self.performance),
            query_parameters=request.get("query_parameters"),
        )
        self.pipeline_execution_id = pid
        return DunePipelineRun(self.hook, pid)

    def run_from_ids(self, ids: Mapping[str, Any]) -> DunePipelineRun:
        return DunePipelineRun(self.hook, str(ids["pipeline_execution_id"]))

    def make_trigger(self, run: RemoteRun, end_time: float | None) -> DunePipelineTrigger:
        return DunePipelineTrigger(
            pipeline_execution_id=run.ids["pipeline_execution_id"],
            dune_conn_id=self.dune_conn_id,
            poll_interval=self.poll_interval,
            end_time=end_time,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Called when the trigger fires: return the pipeline id or raise what went wrong."""
        run = self.complete_from_event(context, event)
        self.pipeline_execution_id = run.ids["pipeline_execution_id"]
        return self.pipeline_execution_id
