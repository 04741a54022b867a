"""Operators that run Dune query pipelines."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_dune.exceptions import DuneApiError, DuneConfigurationError, DuneError
from airflow_provider_dune.hooks.dune import DuneHook, DunePipelineTimeout
from airflow_provider_dune.links.dune import DUNE_QUERY_URL, DuneQueryLink
from airflow_provider_dune.models.events import PipelineEvent, event_from_status, timeout_event
from airflow_provider_dune.models.pipeline_spec import build_pipeline_request
from airflow_provider_dune.models.run import RunOutcome
from airflow_provider_dune.triggers.dune import DunePipelineTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class DunePipelineFailed(DuneError):
    """A Dune pipeline ended in failure, or the wait for it ended before it did."""


def complete_pipeline_wait(event: Mapping[str, Any], context: Context, hook: DuneHook, log: Any) -> str:
    """Turn the end of a wait (trigger event or in-worker poll) into a result or one clear error.

    Pushes ``node_executions`` to XCom either way, so downstream tasks (and a person
    debugging) see every node's execution id and state. On failure the message gains the
    SQL error's type, line and column, read from each failed node's execution.
    """
    pid = str(event.get("pipeline_execution_id", ""))
    nodes = list(event.get("node_executions") or [])
    if nodes:
        context["ti"].xcom_push(key="node_executions", value=nodes)
    status = event.get("status")
    message = str(event.get("message") or f"Dune pipeline {pid} ended with status {status!r}.")
    if status == "success":
        log.info("%s", message)
        return pid
    if status == "error":
        message += _sql_error_details(hook, nodes, log)
    raise DunePipelineFailed(message)


def _sql_error_details(hook: DuneHook, nodes: Sequence[Mapping[str, Any]], log: Any) -> str:
    """Line/column and error type of each failed node, from its execution status (best effort)."""
    details = []
    for node in nodes:
        if not node.get("error") and str(node.get("status", "")).lower() not in (
            "failed",
            "query_state_failed",
        ):
            continue
        execution_id = node.get("execution_id")
        if not execution_id:
            continue
        try:
            error = hook.get_execution_status(execution_id).error
        except DuneError as exc:
            log.warning("Could not read the error of execution %s: %s", execution_id, exc)
            continue
        if error is not None:
            details.append(f"  node {node.get('node_id')} SQL error: {error.describe()}")
    return ("\n" + "\n".join(details)) if details else ""


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


class DuneRunPipelineOperator(BaseOperator):
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
    :param cancel_on_kill: cancel the running nodes when the task is killed.
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
        context["ti"].xcom_push(key="pipeline_execution_id", value=pid)
        self.log.info("Started Dune pipeline %s.", pid)

        if not self.wait_for_termination:
            status = self.hook.get_pipeline_status(pid)
            context["ti"].xcom_push(key="node_executions", value=status.node_dicts())
            return pid
        if self.deferrable:
            end_time = time.time() + self.timeout if self.timeout is not None else None
            self.defer(
                trigger=DunePipelineTrigger(
                    pipeline_execution_id=pid,
                    dune_conn_id=self.dune_conn_id,
                    poll_interval=self.poll_interval,
                    end_time=end_time,
                ),
                method_name="execute_complete",
            )
        return complete_pipeline_wait(self._wait_in_worker(pid), context, self.hook, self.log)

    def _wait_in_worker(self, pid: str) -> PipelineEvent:
        try:
            status = self.hook.wait_for_pipeline(pid, poll_interval=self.poll_interval, timeout=self.timeout)
        except DunePipelineTimeout as exc:
            return timeout_event(pid, exc.waited, exc.last_status)
        return event_from_status(status)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Called when the trigger fires: return the pipeline id or raise what went wrong."""
        self.pipeline_execution_id = event.get("pipeline_execution_id")
        return complete_pipeline_wait(event, context, self.hook, self.log)

    def on_kill(self) -> None:
        if not (self.cancel_on_kill and self.pipeline_execution_id):
            return
        try:
            status = self.hook.get_pipeline_status(self.pipeline_execution_id)
            if status.outcome is RunOutcome.RUNNING:
                cancelled = self.hook.cancel_pipeline(status)
                self.log.info(
                    "Cancelled Dune pipeline %s: executions %s.", self.pipeline_execution_id, cancelled
                )
        except (DuneApiError, DuneError) as exc:
            self.log.warning("Could not cancel Dune pipeline %s: %s", self.pipeline_execution_id, exc)
