"""Operators that run Dune query pipelines."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_dune.assets import dune_view_asset, emit_view_events, is_full_view_name, views_alias
from airflow_provider_dune.exceptions import DuneConfigurationError, DuneError
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.links.dune import DUNE_QUERY_URL, DuneQueryLink
from airflow_provider_dune.models.dune import ExecutionStatus, refreshed_view_names
from airflow_provider_dune.models.pipeline_spec import build_pipeline_request
from airflow_provider_dune.models.rerun import plan_rerun, query_pipeline_nodes, succeeded_node_ids
from airflow_provider_dune.operators.base import (
    DEFAULT_TIMEOUT,
    WAIT_ARGS_DOC,
    RemoteRunOperatorMixin,
    push_xcom,
)
from airflow_provider_dune.operators.deferral import DEFAULT_DEFER_AFTER
from airflow_provider_dune.runs.base import RemoteRun, RunState
from airflow_provider_dune.runs.dune import CARRIED_NODES_KEY, DuneExecutionRun, DunePipelineRun
from airflow_provider_dune.runs.latest import (
    EXECUTED,
    RESULT_SOURCE_KEY,
    REUSED,
    ReusedResultRun,
    fresh_result,
)
from airflow_provider_dune.validation import (
    optional_positive_number,
    optional_positive_seconds,
    positive_count,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_dune.triggers.base import TriggerWait
    from airflow_provider_dune.triggers.dune import DuneExecutionTrigger, DunePipelineTrigger


def _outlets(operator: Any) -> list[Any]:
    # Through getattr: BaseOperator's outlets has no type that mypy settles the same way on every
    # run across the 2.11/3.x bridge ("Cannot determine type"), so it is read as Any here.
    return list(getattr(operator, "outlets", None) or [])


def _add_outlet(operator: Any, outlet: Any) -> None:
    operator.outlets = [*_outlets(operator), outlet]


def _literal_view_names(nodes: Any) -> list[str]:
    """Full view names written literally in a node list (not in a template string)."""
    if not isinstance(nodes, list):
        return []
    names = []
    for node in nodes:
        refresh = node.get("materialized_view_refresh") if isinstance(node, Mapping) else None
        name = refresh.get("name") if isinstance(refresh, Mapping) else None
        if is_full_view_name(name):
            names.append(str(name).strip().lower())
    return names


def _query_link(query_id: Any) -> dict[str, str]:
    """The XCom behind the "Dune query" link, for operators given a query id."""
    return {DuneQueryLink.key: DUNE_QUERY_URL.format(query_id=query_id)} if query_id is not None else {}


def _target_query(nodes: Any) -> int | None:
    """The query of the last query node no other node depends on, in a literal node list."""
    nodes = [n for n in (nodes if isinstance(nodes, list) else []) if isinstance(n, Mapping)]
    needed = {d for n in nodes for d in n.get("dependencies") or []}
    sinks = [n for n in nodes if n.get("id") not in needed and isinstance(n.get("query_execution"), Mapping)]
    return sinks[-1]["query_execution"].get("query_id") if sinks else None


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
    __doc__ = (
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
    ``execution_id``, ``status``, ``error`` and ``credits`` (what the node cost), and
    ``credits_used`` the total; the log says both.

    :param query_id: the query whose lineage forms the pipeline. (templated)
    :param nodes: an explicit list of pipeline nodes. (templated)
    :param performance: engine tier, ``medium`` or ``large``; with ``nodes`` the default for every
        node that does not set its own. Unset, none is sent and Dune uses its default (medium).
        (templated)
    :param query_parameters: parameters of the query, with ``query_id``. (templated)
    :param dune_conn_id: the Airflow connection holding the API key.
    :param emit_view_assets: also record an Asset event (through the alias
        ``dune-materialized-views``) for every refreshed view that is not a declared outlet,
        e.g. the views Dune found in a ``query_id`` pipeline's lineage. Views named in ``nodes``
        are declared outlets and always get their event. Off by default: Airflow creates an
        alias's Asset on its first event, and pipelines that finish at the same moment and
        refreshed the same new view race on that insert (seen on Airflow 3.3), failing a task
        whose pipeline succeeded.
    :param max_credits: a budget for the run. Each node's cost is read as it finishes; once the
        total passes this, every node still running is cancelled (the nodes after them never
        start) and the task fails saying what was spent. Unset: no budget.
    :param rerun_failed_only: when Airflow retries the task after its pipeline failed, submit
        only the nodes that failed or never ran, with the dependencies among themselves, and
        log the nodes skipped because they had succeeded (XCom ``skipped_nodes``). False: a
        retry runs the whole pipeline again. Needs ``durable`` (the record of the failed run)."""
        + WAIT_ARGS_DOC
    )

    template_fields: Sequence[str] = ("query_id", "nodes", "query_parameters", "performance")
    template_fields_renderers = {"nodes": "json", "query_parameters": "json"}
    operator_extra_links = (DuneQueryLink(),)
    ui_color = "#f4603e"
    run_id_key = "pipeline_execution_id"

    def __init__(
        self,
        *,
        query_id: int | str | None = None,
        nodes: list[dict[str, Any]] | str | None = None,
        performance: str | None = None,
        query_parameters: dict[str, Any] | str | None = None,
        dune_conn_id: str = DuneHook.default_conn_name,
        wait_for_termination: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10,
        timeout: float | None = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        defer_after: float = DEFAULT_DEFER_AFTER,
        durable: bool = True,
        emit_view_assets: bool = False,
        max_credits: float | None = None,
        rerun_failed_only: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (query_id is None) == (nodes is None):
            raise DuneConfigurationError(
                f"{type(self).__name__} {kwargs.get('task_id', '')!r}: give exactly one of query_id "
                "(Dune builds the pipeline from the query's lineage) or nodes (an explicit pipeline)."
            )
        self._set_wait_options(
            wait_for_termination, deferrable, poll_interval, timeout, cancel_on_kill, defer_after, durable
        )
        self.query_id = query_id
        self.nodes = nodes
        self.performance = performance
        self.query_parameters = query_parameters
        self.dune_conn_id = dune_conn_id
        self.pipeline_execution_id: str | None = None
        self.emit_view_assets = emit_view_assets
        self.max_credits = optional_positive_number(max_credits, "max_credits")
        self.rerun_failed_only = rerun_failed_only
        # Views named in literal nodes are known now: declared outlets, created when the DAG is
        # parsed. Others are known only once the pipeline ran: events through the alias, if asked.
        for name in _literal_view_names(nodes):
            _add_outlet(self, dune_view_asset(name))
        if emit_view_assets:
            _add_outlet(self, views_alias())

    @cached_property
    def hook(self) -> DuneHook:
        return DuneHook(self.dune_conn_id)

    def execute(self, context: Context) -> str:
        return self._returning_id(self.run_and_wait(context))

    def link_xcoms(self, run: RemoteRun) -> dict[str, str]:
        """The "Dune query" link: the query whose pipeline runs, or the last query of ``nodes``
        that no other node depends on (the pipeline's result)."""
        return _query_link(self.query_id if self.query_id is not None else _target_query(self.nodes))

    def submit(self, context: Context) -> DunePipelineRun:
        # Rendered templates are validated here, before any request.
        request = build_pipeline_request(
            query_id=self.query_id,
            nodes=_from_json(self.nodes, "nodes"),
            performance=self.performance,
            query_parameters=_from_json(self.query_parameters, "query_parameters"),
        )
        pid = self.hook.execute_pipeline(
            query_id=request.get("query_id"),
            nodes=request.get("pipeline", {}).get("nodes"),
            performance=request.get("performance"),
            query_parameters=request.get("query_parameters"),
        )
        self.pipeline_execution_id = pid
        return self.run_from_ids({"pipeline_execution_id": pid})

    def run_from_ids(self, ids: Mapping[str, Any]) -> DunePipelineRun:
        return DunePipelineRun(
            self.hook,
            str(ids["pipeline_execution_id"]),
            max_credits=self.max_credits,
            carried_nodes=ids.get(CARRIED_NODES_KEY),
        )

    def keeps_failed_runs(self) -> bool:
        return self.rerun_failed_only

    def lineage_views(self, event: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Outputs: the views the pipeline refreshed."""
        return [], refreshed_view_names(event.get("node_executions"))

    def resubmit(self, context: Context, failed: RemoteRun, state: RunState) -> DunePipelineRun:
        """After a failed pipeline: submit only the nodes that did not succeed (see :mod:`models.rerun`)."""
        ran = state.payload.get("node_executions") or []
        # Read the query's pipeline only when something succeeded: otherwise everything reruns.
        plan = (
            plan_rerun(self.pipeline_nodes(), ran)
            if self.rerun_failed_only and succeeded_node_ids(ran)
            else None
        )
        if plan is None:
            self.log.info("Rerunning the whole pipeline: no node of %s can be skipped.", failed.label)
            return self.submit(context)
        self.log.info(
            "Rerunning only the %d node(s) of %s that failed or never ran; skipped, as they had "
            "succeeded: %s.",
            len(plan.nodes),
            failed.label,
            "; ".join(plan.skipped),
        )
        push_xcom(self, context, "skipped_nodes", plan.skipped)
        pid = self.hook.execute_pipeline(nodes=plan.nodes)
        self.pipeline_execution_id = pid
        return self.run_from_ids({"pipeline_execution_id": pid, CARRIED_NODES_KEY: plan.carried})

    def pipeline_nodes(self) -> list[dict[str, Any]]:
        """The pipeline as explicit nodes: ``nodes`` as validated, or the query's own pipeline."""
        if self.nodes is not None:
            request = build_pipeline_request(
                nodes=_from_json(self.nodes, "nodes"), performance=self.performance
            )
            return list(request["pipeline"]["nodes"])
        return query_pipeline_nodes(
            self.hook.get_query_pipeline(self.query_id),  # type: ignore[arg-type]
            query_parameters=_from_json(self.query_parameters, "query_parameters"),
            performance=self.performance,
        )

    def make_trigger(self, run: RemoteRun, wait: TriggerWait) -> DunePipelineTrigger:
        # Imported here: only a deferring task needs the trigger (and its import cost).
        from airflow_provider_dune.triggers.dune import DunePipelineTrigger

        return DunePipelineTrigger(
            pipeline_execution_id=run.ids["pipeline_execution_id"],
            dune_conn_id=self.dune_conn_id,
            cancel_on_kill=self.cancel_on_kill,
            max_credits=self.max_credits,
            carried_nodes=run.ids.get(CARRIED_NODES_KEY),
            **wait,
        )

    def end_wait(self, run: RemoteRun, event: Mapping[str, Any], context: Context) -> None:
        super().end_wait(run, event, context)  # raises unless the pipeline succeeded
        declared = _outlets(self)
        names = refreshed_view_names(event.get("node_executions"))
        if not self.emit_view_assets:
            declared_uris = {getattr(a, "uri", None) for a in declared}
            names = [n for n in names if dune_view_asset(n).uri in declared_uris]
        uris = emit_view_events(
            context,
            names,
            declared=declared,
            extra={"pipeline_execution_id": run.ids["pipeline_execution_id"]},
        )
        if uris:
            self.log.info("Refreshed materialized views (Asset events): %s", ", ".join(uris))


# --------------------------------------------------------------------------- single executions

# However a user sets max_xcom_rows, XCom is for small results: the metadata database holds them.
XCOM_ROWS_HARD_LIMIT = 10_000
# And however few the rows, they can be wide: the pushed value is capped by its JSON size too.
DEFAULT_MAX_XCOM_BYTES = 1024 * 1024
XCOM_BYTES_HARD_LIMIT = 16 * 1024 * 1024


class DuneResultTooLargeForXCom(DuneError):
    """``push_rows_to_xcom`` was asked for a result with more rows or bytes than the limits allow."""


class _DuneExecutionOperator(RemoteRunOperatorMixin, BaseOperator):
    """Shared by every operator that starts one Dune execution and waits for it.

    Subclasses implement :meth:`start_execution`; waiting, XCom, partial results, cancel and
    the end of the wait are the same for a saved query, ad-hoc SQL and a view refresh.
    """

    ui_color = "#f4603e"
    run_id_key = "execution_id"
    operator_extra_links = (DuneQueryLink(),)

    def __init__(
        self,
        *,
        performance: str | None = None,
        allow_partial_results: bool = False,
        push_rows_to_xcom: bool = False,
        max_xcom_rows: int = 1000,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        dune_conn_id: str = DuneHook.default_conn_name,
        wait_for_termination: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10,
        timeout: float | None = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        defer_after: float = DEFAULT_DEFER_AFTER,
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._set_wait_options(
            wait_for_termination, deferrable, poll_interval, timeout, cancel_on_kill, defer_after, durable
        )
        if not 0 < max_xcom_rows <= XCOM_ROWS_HARD_LIMIT:
            raise DuneConfigurationError(
                f"max_xcom_rows must be between 1 and {XCOM_ROWS_HARD_LIMIT:,}, got {max_xcom_rows}. "
                "For bigger results use DuneResultsToStorageOperator."
            )
        if positive_count(max_xcom_bytes, "max_xcom_bytes") > XCOM_BYTES_HARD_LIMIT:
            raise DuneConfigurationError(
                f"max_xcom_bytes must be at most {XCOM_BYTES_HARD_LIMIT:,}, got {max_xcom_bytes}. "
                "For bigger results use DuneResultsToStorageOperator."
            )
        if push_rows_to_xcom and not wait_for_termination:
            raise DuneConfigurationError("push_rows_to_xcom needs wait_for_termination=True.")
        if push_rows_to_xcom and not self.do_xcom_push:
            raise DuneConfigurationError("push_rows_to_xcom needs do_xcom_push=True.")
        self.performance = performance
        self.allow_partial_results = allow_partial_results
        self.push_rows_to_xcom = push_rows_to_xcom
        self.max_xcom_rows = max_xcom_rows
        self.max_xcom_bytes = int(max_xcom_bytes)
        self.dune_conn_id = dune_conn_id
        self.execution_id: str | None = None

    @cached_property
    def hook(self) -> DuneHook:
        return DuneHook(self.dune_conn_id)

    @abstractmethod
    def start_execution(self, context: Context) -> dict[str, Any]:
        """Validate the rendered arguments, start the execution on Dune, return its ids
        (``execution_id``, and whatever else :meth:`run_from_ids` needs)."""

    def execute(self, context: Context) -> str:
        return self._returning_id(self.run_and_wait(context))

    def submit(self, context: Context) -> DuneExecutionRun:
        ids = self.start_execution(context)
        self.execution_id = ids["execution_id"]
        return self.run_from_ids(ids)

    def run_from_ids(self, ids: Mapping[str, Any]) -> DuneExecutionRun:
        return DuneExecutionRun(
            self.hook, str(ids["execution_id"]), allow_partial_results=self.allow_partial_results
        )

    def make_trigger(self, run: RemoteRun, wait: TriggerWait) -> DuneExecutionTrigger:
        # Imported here: only a deferring task needs the trigger (and its import cost).
        from airflow_provider_dune.triggers.dune import DuneExecutionTrigger

        return DuneExecutionTrigger(
            execution_id=run.ids["execution_id"],
            dune_conn_id=self.dune_conn_id,
            allow_partial_results=self.allow_partial_results,
            cancel_on_kill=self.cancel_on_kill,
            **wait,
        )

    def end_wait(self, run: RemoteRun, event: Mapping[str, Any], context: Context) -> None:
        status = DuneExecutionRun.status_from_payload(event)
        if status is not None and status.is_partial:
            # Always said, whether or not partial results are allowed: the rows are not all there.
            self.log.warning("%s", status.partial_warning())
        if status is not None and status.query_id:
            # The saved query behind the execution (a view's own query for a refresh); ad-hoc
            # SQL has none (Dune says query 0), so its task shows no link.
            for key, value in _query_link(status.query_id).items():
                push_xcom(self, context, key, value)
        execution_id = run.ids["execution_id"]
        if self.push_rows_to_xcom and event.get("status") == "success":
            # Checked before the run is called a success: a result too big for XCom fails the
            # task here, with the run's record kept, so a retry reuses the result unbilled.
            self._check_row_count(execution_id, status)
        super().end_wait(run, event, context)  # raises unless the execution succeeded
        if self.push_rows_to_xcom:
            self.push_rows(context, execution_id)
        self.after_success(context, run, status)

    def after_success(self, context: Context, run: RemoteRun, status: ExecutionStatus | None) -> None:
        """What a subclass does once the execution completed (the view operator emits Assets)."""

    def views_read_by(self, query_id: Any) -> list[str]:
        """The materialized views a saved query reads, from its pipeline (Dune's lineage)."""
        if query_id is None:
            return []
        try:
            return list(self.hook.get_query_pipeline(query_id).view_names)
        except DuneError as exc:
            self.log.warning(
                "No OpenLineage inputs: could not read the pipeline of query %s: %s", query_id, exc
            )
            return []

    def _check_row_count(self, execution_id: str, status: ExecutionStatus | None) -> None:
        """Refuse, from the status alone, a result that cannot fit: no page is read to find out."""
        metadata = status.metadata if status else None
        total = metadata.total_row_count if metadata else None
        if total is not None and total > self.max_xcom_rows:
            raise self._too_large(execution_id, f"{total:,} rows")
        # Dune counts the raw value bytes; their JSON is at least as big.
        raw_bytes = metadata.total_result_set_bytes if metadata else None
        if raw_bytes is not None and raw_bytes > self.max_xcom_bytes:
            raise self._too_large(execution_id, f"{raw_bytes:,} bytes")

    def push_rows(self, context: Context, execution_id: str) -> None:
        """XCom ``rows``: the whole result as a list of dicts, refused past ``max_xcom_rows`` rows
        or ``max_xcom_bytes`` bytes of JSON."""
        rows: list[dict[str, Any]] = []
        size = 2  # the list's brackets
        # One row more than allowed is enough to know the result is too large.
        for row in self.hook.iter_results(
            execution_id,
            page_size=self.max_xcom_rows + 1,
            allow_partial_results=self.allow_partial_results,
        ):
            rows.append(row)
            if len(rows) > self.max_xcom_rows:
                raise self._too_large(execution_id, "more rows")
            size += len(json.dumps(row, default=str)) + 2  # and the ", " before the next
            if size > self.max_xcom_bytes:
                raise self._too_large(execution_id, "more bytes")
        push_xcom(self, context, "rows", rows)
        self.log.info("Pushed %d rows of execution %s to XCom 'rows'.", len(rows), execution_id)

    def _too_large(self, execution_id: str, what: str) -> DuneResultTooLargeForXCom:
        limit = (
            f"max_xcom_bytes={self.max_xcom_bytes:,}"
            if what.endswith("bytes")
            else f"max_xcom_rows={self.max_xcom_rows:,}"
        )
        return DuneResultTooLargeForXCom(
            f"Dune execution {execution_id} returned {what} than {limit}; XCom lives in Airflow's "
            "metadata database and is meant for small results. Write the result to storage with "
            "DuneResultsToStorageOperator, or narrow the query (hard limits "
            f"{XCOM_ROWS_HARD_LIMIT:,} rows, {XCOM_BYTES_HARD_LIMIT:,} bytes)."
        )


_EXECUTION_ARGS_DOC = (
    """
    :param allow_partial_results: when Dune truncates a too-large result
        (``QUERY_STATE_COMPLETED_PARTIAL``), succeed with the partial result instead of failing.
        A partial result is always logged as a warning.
    :param push_rows_to_xcom: after success, push the result rows to XCom ``rows`` (a list of
        dicts). Off by default: XCom is for small results.
    :param max_xcom_rows: with ``push_rows_to_xcom``, fail with a clear error when the result has
        more rows than this (at most 10,000).
    :param max_xcom_bytes: with ``push_rows_to_xcom``, fail with a clear error when the rows take
        more than this many bytes as JSON (default 1 MiB, at most 16 MiB).
    :param dune_conn_id: the Airflow connection holding the API key."""
    + WAIT_ARGS_DOC
)


class DuneRunQueryOperator(_DuneExecutionOperator):
    __doc__ = (
        """
    Runs one saved Dune query (``POST /v1/query/{query_id}/execute``) and by default waits for it.

    The execution id is pushed to XCom (``execution_id``) as soon as Dune returns it and is the
    task's return value. When the wait ends, XCom ``execution`` holds the state, timestamps,
    ``result_metadata`` (row count, column names and types, datapoints, bytes), ``error`` and
    ``execution_cost_credits``; XCom ``credits_used`` holds the cost alone.
    The task fails when the execution failed (with Dune's error type, message, line and
    column), was cancelled or expired. Unknown states count as still running (warned once).

    :param query_id: the saved query to run. (templated)
    :param query_parameters: values for the query's parameters, ``{"name": value}``. (templated)
    :param performance: engine tier, ``medium`` or ``large``; unset, Dune uses its default
        (medium). (templated)
    :param max_result_age: seconds (or a ``timedelta``): first read the query's latest result
        (``GET /v1/query/{query_id}/results``, no execution credits) and, when it ended at most
        this long ago, use it instead of executing: the task returns that execution's id and
        pushes its XComs as if it had run it, with ``credits_used`` 0. XCom ``result_source``
        says ``reused`` or ``executed``, and so does the log. Not with ``query_parameters``:
        Dune's latest result does not say which parameters made it."""
        + _EXECUTION_ARGS_DOC
    )

    template_fields: Sequence[str] = ("query_id", "query_parameters", "performance")
    template_fields_renderers = {"query_parameters": "json"}

    def __init__(
        self,
        *,
        query_id: int | str,
        query_parameters: dict[str, Any] | str | None = None,
        performance: str | None = None,
        max_result_age: float | timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(performance=performance, **kwargs)
        self.query_id = query_id
        self.query_parameters = query_parameters
        self.max_result_age = optional_positive_seconds(max_result_age, "max_result_age")
        if self.max_result_age is not None and query_parameters:
            raise DuneConfigurationError(
                "max_result_age cannot be combined with query_parameters: Dune's latest result of a "
                "query does not say which parameter values produced it. Drop one of them."
            )

    def link_xcoms(self, run: RemoteRun) -> dict[str, str]:
        return _query_link(self.query_id)

    def lineage_views(self, event: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Inputs: the views the query reads."""
        return self.views_read_by(self.query_id), []

    def reuse(self, context: Context) -> DuneExecutionRun | None:
        if self.max_result_age is None:
            return None
        page = fresh_result(self.hook, self.query_id, self.max_result_age, self.log)
        push_xcom(self, context, RESULT_SOURCE_KEY, REUSED if page is not None else EXECUTED)
        if page is None:
            return None
        return ReusedResultRun(self.hook, page.execution_id, allow_partial_results=self.allow_partial_results)

    def start_execution(self, context: Context) -> dict[str, Any]:
        request = build_pipeline_request(
            query_id=self.query_id,
            performance=self.performance,
            query_parameters=_from_json(self.query_parameters, "query_parameters"),
        )
        execution_id = self.hook.execute_query(
            request["query_id"],
            query_parameters=request.get("query_parameters"),
            performance=request.get("performance"),
        )
        return {"execution_id": execution_id}


class DuneRunSQLOperator(_DuneExecutionOperator):
    __doc__ = (
        """
    Runs an ad-hoc Dune SQL statement (``POST /v1/sql/execute``) and by default waits for it.

    Same waiting, XCom and failure behaviour as :class:`DuneRunQueryOperator`: the execution
    id is the return value and XCom ``execution_id``; XCom ``execution`` holds the final
    status and ``result_metadata``.

    :param sql: the SQL to run, or a path ending in ``.sql`` to a file in the DAG folder.
        (templated)
    :param performance: engine tier, ``medium`` or ``large``; unset, Dune uses its default
        (medium). (templated)"""
        + _EXECUTION_ARGS_DOC
    )

    template_fields: Sequence[str] = ("sql", "performance")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql"}

    def __init__(self, *, sql: str, performance: str | None = None, **kwargs: Any) -> None:
        super().__init__(performance=performance, **kwargs)
        self.sql = sql

    def start_execution(self, context: Context) -> dict[str, Any]:
        return {"execution_id": self.hook.execute_sql(self.sql, performance=self.performance)}

    def lineage_sql(self) -> str | None:
        return str(self.sql)


# XCom (and resume record) holding a refreshed view's full name, from Dune's refresh answer.
VIEW_XCOM_KEY = "materialized_view"


class _ViewRefreshRun(DuneExecutionRun):
    """A refresh execution that also carries the view's full name once Dune has said it: the
    name travels with the ids (XCom, resume record), so the Asset event can name the view after
    a deferral or a retry."""

    def __init__(self, hook: DuneHook, execution_id: str, view: str | None, **kwargs: Any) -> None:
        super().__init__(hook, execution_id, **kwargs)
        self.view = view

    @property
    def ids(self) -> dict[str, Any]:
        return {**super().ids, **({VIEW_XCOM_KEY: self.view} if self.view else {})}


class DuneRefreshMaterializedViewOperator(_DuneExecutionOperator):
    __doc__ = (
        """
    Refreshes a Dune materialized view (``POST /v1/materialized-views/{name}/refresh``) and by
    default waits until the refresh execution has finished.

    On success the view is recorded as refreshed: an Airflow Asset (a Dataset on Airflow 2.11)
    with URI ``dune://materialized-views/<full view name>``, so a downstream DAG can use
    ``schedule=[dune_view_asset("dune.team.result_x")]`` (``airflow_provider_dune.assets``).
    Given a full literal name the Asset is the task's declared outlet; a short or templated
    name is recorded through the ``dune-materialized-views`` asset alias, under the full name
    Dune's refresh answer gives (also pushed to XCom ``materialized_view``).

    :param name: the view, ideally its full name ``dune.<team>.result_<name>``. (templated)
    :param performance: engine tier for this refresh, ``medium`` or ``large``; ``None`` uses the
        view's own tier. (templated)"""
        + _EXECUTION_ARGS_DOC
    )

    template_fields: Sequence[str] = ("name", "performance")

    def __init__(self, *, name: str, performance: str | None = None, **kwargs: Any) -> None:
        super().__init__(performance=performance, **kwargs)
        self.name = name
        if is_full_view_name(name):
            _add_outlet(self, dune_view_asset(name))
        else:
            _add_outlet(self, views_alias())

    def start_execution(self, context: Context) -> dict[str, Any]:
        refresh = self.hook.refresh_materialized_view(str(self.name), performance=self.performance)
        return {"execution_id": refresh.execution_id, VIEW_XCOM_KEY: refresh.name}

    def run_from_ids(self, ids: Mapping[str, Any]) -> DuneExecutionRun:
        return _ViewRefreshRun(
            self.hook,
            str(ids["execution_id"]),
            ids.get(VIEW_XCOM_KEY),
            allow_partial_results=self.allow_partial_results,
        )

    def lineage_views(self, event: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Output: the view; inputs: the views its query reads."""
        name = self.name if is_full_view_name(self.name) else event.get(VIEW_XCOM_KEY)
        query_id = (event.get("execution") or {}).get("query_id")
        return self.views_read_by(query_id), [str(name)] if name else []

    def after_success(self, context: Context, run: RemoteRun, status: ExecutionStatus | None) -> None:
        uris = emit_view_events(
            context,
            [self._full_name(context, run)],
            declared=_outlets(self),
            extra={"execution_id": run.ids["execution_id"]},
        )
        self.log.info("Materialized view refreshed (Asset event): %s", ", ".join(uris))

    def _full_name(self, context: Context, run: RemoteRun) -> str:
        """The name the Asset takes: the literal full name the DAG gave, or the one Dune's refresh
        answer gave (in XCom for a task resumed from the triggerer, whose event has only ids)."""
        if is_full_view_name(self.name):
            return str(self.name)
        name = run.ids.get(VIEW_XCOM_KEY) or context["ti"].xcom_pull(task_ids=self.task_id, key=VIEW_XCOM_KEY)
        if not name:
            raise DuneError(
                f"Dune's refresh answer did not give the full name of materialized view {self.name!r}, "
                "so its Asset cannot be named; give the operator the full name dune.<team>.result_<name>."
            )
        return str(name)


class DuneRunQueryPipelineOperator(DuneRunPipelineOperator):
    __doc__ = (
        """
    Runs a query's predefined pipeline (``POST /v1/query/{query_id}/pipeline/execute``): every
    materialized view the query reads, refreshed upstream first, then the query itself.

    Waits, fails, cancels and hands ids downstream exactly like
    :class:`DuneRunPipelineOperator` (XCom ``pipeline_execution_id`` and ``node_executions``),
    and records every refreshed view as an Asset event through the ``dune-materialized-views``
    alias. To see the pipeline without running it, use ``DuneHook.get_query_pipeline``.

    :param query_id: the query whose pipeline runs. (templated)
    :param query_parameters: parameters of the query. (templated)
    :param performance: engine tier, ``medium`` or ``large``; this endpoint needs one, so unset
        means Dune's default, medium. (templated)
    :param dune_conn_id: the Airflow connection holding the API key."""
        + WAIT_ARGS_DOC
    )

    template_fields: Sequence[str] = ("query_id", "query_parameters", "performance")
    template_fields_renderers = {"query_parameters": "json"}

    def __init__(self, *, query_id: int | str, **kwargs: Any) -> None:
        if "nodes" in kwargs:
            raise DuneConfigurationError(
                "DuneRunQueryPipelineOperator runs a query's own pipeline; for explicit nodes use "
                "DuneRunPipelineOperator(nodes=...)."
            )
        super().__init__(query_id=query_id, **kwargs)

    def submit(self, context: Context) -> DunePipelineRun:
        request = build_pipeline_request(
            query_id=self.query_id,
            performance=self.performance,
            query_parameters=_from_json(self.query_parameters, "query_parameters"),
        )
        pid = self.hook.execute_query_pipeline(
            request["query_id"],
            performance=request.get("performance"),
            query_parameters=request.get("query_parameters"),
        )
        self.pipeline_execution_id = pid
        return self.run_from_ids({"pipeline_execution_id": pid})
