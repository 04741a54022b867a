"""Deferred waiting on Dune work, in the triggerer's event loop."""

from __future__ import annotations

from typing import Any

from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.models.dune import parse_api_time
from airflow_provider_dune.runs.dune import DuneExecutionRun, DunePipelineRun
from airflow_provider_dune.runs.latest import DuneLatestResultRun
from airflow_provider_dune.triggers.base import RemoteRunTrigger


class DunePipelineTrigger(RemoteRunTrigger):
    """
    Polls a Dune pipeline execution until it finishes, then fires one event.

    The event payload is ``{"status": "success" | "error" | "timeout",
    "pipeline_execution_id", "node_executions", "message"}``. The nodes' cost is left to the
    task that resumes from the event (unless ``max_credits`` needs it as nodes finish), so the
    event is not held back by reads queued behind every other trigger's polls. The trigger
    keeps no state beyond its arguments, so after a triggerer restart it simply carries on. The
    API key is never among its arguments: the hook looks it up from the connection,
    asynchronously.

    :param pipeline_execution_id: the pipeline to watch.
    :param dune_conn_id: the Airflow connection holding the API key.
    :param poll_interval: seconds between status reads (stretched while Dune answers 429).
    :param end_time: epoch seconds after which the wait ends with a ``timeout`` event.
    :param fire_not_before: epoch seconds before which the end event is held back (set by the
        deferring task; guards an Airflow scheduler race, see docs/reliability.md).
    :param cancel_on_kill: cancel the pipeline's running nodes when a user kills the deferred
        task (mark failed/success, clear). False when the waiting task did not start it.
    :param max_credits: the run's budget (see :class:`~airflow_provider_dune.runs.dune.DunePipelineRun`).
    :param carried_nodes: after a rerun of only the failed nodes, the earlier run's entries of
        the skipped nodes (ids and states, no secret), so the event describes the whole pipeline.
    """

    def __init__(
        self,
        pipeline_execution_id: str,
        dune_conn_id: str = DuneHook.default_conn_name,
        poll_interval: float = 10,
        end_time: float | None = None,
        fire_not_before: float | None = None,
        cancel_on_kill: bool = True,
        max_credits: float | None = None,
        carried_nodes: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            poll_interval=poll_interval,
            end_time=end_time,
            cancel_on_kill=cancel_on_kill,
            fire_not_before=fire_not_before,
        )
        self.pipeline_execution_id = pipeline_execution_id
        self.dune_conn_id = dune_conn_id
        self.max_credits = max_credits
        self.carried_nodes = carried_nodes

    def serialize(self) -> tuple[str, dict[str, Any]]:
        carried = {"carried_nodes": self.carried_nodes} if self.carried_nodes else {}
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "pipeline_execution_id": self.pipeline_execution_id,
                "dune_conn_id": self.dune_conn_id,
                "max_credits": self.max_credits,
                **carried,
                **self.wait_kwargs(),
            },
        )

    def remote_run(self) -> DunePipelineRun:
        return DunePipelineRun(
            DuneHook(self.dune_conn_id),
            self.pipeline_execution_id,
            max_credits=self.max_credits,
            carried_nodes=self.carried_nodes,
            # The task resuming from the event reads the cost, from its own request budget.
            price_at_end=False,
        )


class DuneExecutionTrigger(RemoteRunTrigger):
    """
    Polls one Dune query execution until it ends, then fires one event.

    The event payload is ``{"status": "success" | "error" | "timeout", "execution_id",
    "execution", "message"}``, where ``execution`` is the last status read (state,
    timestamps, ``result_metadata``, ``error``). Like :class:`DunePipelineTrigger` it keeps
    no state beyond its arguments and never holds the API key.

    :param execution_id: the execution to watch.
    :param dune_conn_id: the Airflow connection holding the API key.
    :param poll_interval: seconds between status reads (stretched while Dune answers 429).
    :param end_time: epoch seconds after which the wait ends with a ``timeout`` event.
    :param fire_not_before: epoch seconds before which the end event is held back (set by the
        deferring task; guards an Airflow scheduler race, see docs/reliability.md).
    :param allow_partial_results: count a truncated result (``COMPLETED_PARTIAL``) as success.
    :param cancel_on_kill: cancel the execution when a user kills the deferred task (mark
        failed/success, clear). False when the waiting task did not start it.
    """

    def __init__(
        self,
        execution_id: str,
        dune_conn_id: str = DuneHook.default_conn_name,
        poll_interval: float = 10,
        end_time: float | None = None,
        fire_not_before: float | None = None,
        allow_partial_results: bool = False,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__(
            poll_interval=poll_interval,
            end_time=end_time,
            cancel_on_kill=cancel_on_kill,
            fire_not_before=fire_not_before,
        )
        self.execution_id = execution_id
        self.dune_conn_id = dune_conn_id
        self.allow_partial_results = allow_partial_results

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "execution_id": self.execution_id,
                "dune_conn_id": self.dune_conn_id,
                "allow_partial_results": self.allow_partial_results,
                **self.wait_kwargs(),
            },
        )

    def remote_run(self) -> DuneExecutionRun:
        return DuneExecutionRun(
            DuneHook(self.dune_conn_id), self.execution_id, allow_partial_results=self.allow_partial_results
        )


class DuneLatestResultTrigger(RemoteRunTrigger):
    """
    Polls a query's latest result (``GET /v1/query/{query_id}/results``) until it is fresh: it
    ended at most ``max_age_seconds`` before the read, or after ``newer_than``. Then fires one
    event ``{"status": "success", "query_id", "latest_result": {"execution_id", ...}, "message"}``
    (``timeout`` past ``end_time``). Nothing runs on Dune for it, so there is nothing to cancel.

    :param query_id: the query whose latest result is watched.
    :param max_age_seconds: how old the result may be, measured at each read.
    :param newer_than: an ISO 8601 moment the result must have ended after (wall-clock, so it
        means the same after a triggerer restart).
    """

    def __init__(
        self,
        query_id: int | str,
        max_age_seconds: float | None = None,
        newer_than: str | None = None,
        dune_conn_id: str = DuneHook.default_conn_name,
        poll_interval: float = 60,
        end_time: float | None = None,
        fire_not_before: float | None = None,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__(
            poll_interval=poll_interval,
            end_time=end_time,
            cancel_on_kill=cancel_on_kill,
            fire_not_before=fire_not_before,
        )
        self.query_id = query_id
        self.max_age_seconds = max_age_seconds
        self.newer_than = newer_than
        self.dune_conn_id = dune_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "query_id": self.query_id,
                "max_age_seconds": self.max_age_seconds,
                "newer_than": self.newer_than,
                "dune_conn_id": self.dune_conn_id,
                **self.wait_kwargs(),
            },
        )

    def remote_run(self) -> DuneLatestResultRun:
        return DuneLatestResultRun(
            DuneHook(self.dune_conn_id),
            self.query_id,
            max_age=self.max_age_seconds,
            newer_than=parse_api_time(self.newer_than) if self.newer_than else None,
        )
