"""Operators that run Maia (Matillion Data Productivity Cloud) pipelines."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_dune.exceptions import DuneConfigurationError
from airflow_provider_dune.hooks.maia import MaiaHook
from airflow_provider_dune.links.maia import MaiaPipelineRunLink, maia_execution_url
from airflow_provider_dune.operators.base import DEFAULT_TIMEOUT, WAIT_ARGS_DOC, RemoteRunOperatorMixin
from airflow_provider_dune.operators.deferral import DEFAULT_DEFER_AFTER
from airflow_provider_dune.runs.base import RemoteRun
from airflow_provider_dune.runs.maia import MaiaPipelineRun, warn_if_skipped

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_dune.triggers.base import TriggerWait
    from airflow_provider_dune.triggers.maia import MaiaPipelineTrigger

_SCALAR_TYPES = (str, int, float, bool)


class MaiaRunPipelineOperator(RemoteRunOperatorMixin, BaseOperator):
    __doc__ = (
        """
    Runs a published Maia pipeline and (by default) waits until it ends.

    Starts the pipeline with ``POST /v1/projects/{projectId}/pipeline-executions``, pushes
    ``pipeline_execution_id`` and ``project_id`` to XCom as soon as Maia returns them, then
    polls the execution's status. ``SUCCESS`` ends the task; ``FAILED``, ``CANCELLED`` and
    ``FORBIDDEN`` fail it; ``SKIPPED`` ends it with a warning (or fails it with
    ``fail_on_skipped=True``). XCom ``pipeline_status`` holds Maia's last status string. The
    return value is the pipeline execution id. Only published pipelines can be run.

    :param project_id: the Maia project (its UUID, from ``GET /v1/projects``). (templated)
    :param pipeline_name: the published pipeline's name. (templated)
    :param environment_name: the environment to run it in, e.g. ``Dev``. (templated)
    :param scalar_variables: pipeline variables, ``{"name": "value"}``; numbers and booleans
        are sent as strings. (templated)
    :param grid_variables: grid variables, ``{"name": [["row1col1", "row1col2"], ...]}``. (templated)
    :param maia_conn_id: the Airflow connection holding the API client id and secret.
    :param fail_on_skipped: fail the task when Maia reports the execution ``SKIPPED``.
    (Cancelling uses Maia's pipeline termination call.)"""
        + WAIT_ARGS_DOC
    )

    template_fields: Sequence[str] = (
        "project_id",
        "pipeline_name",
        "environment_name",
        "scalar_variables",
        "grid_variables",
    )
    template_fields_renderers = {"scalar_variables": "json", "grid_variables": "json"}
    ui_color = "#5cc9a7"
    run_id_key = "pipeline_execution_id"
    lineage_source = "maia"
    operator_extra_links = (MaiaPipelineRunLink(),)

    def __init__(
        self,
        *,
        project_id: str,
        pipeline_name: str,
        environment_name: str,
        scalar_variables: Mapping[str, Any] | str | None = None,
        grid_variables: Mapping[str, Any] | str | None = None,
        maia_conn_id: str = MaiaHook.default_conn_name,
        wait_for_termination: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10,
        timeout: float | None = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        defer_after: float = DEFAULT_DEFER_AFTER,
        durable: bool = True,
        fail_on_skipped: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._set_wait_options(
            wait_for_termination, deferrable, poll_interval, timeout, cancel_on_kill, defer_after, durable
        )
        self.project_id = project_id
        self.pipeline_name = pipeline_name
        self.environment_name = environment_name
        self.scalar_variables = scalar_variables
        self.grid_variables = grid_variables
        self.maia_conn_id = maia_conn_id
        self.fail_on_skipped = fail_on_skipped
        self.pipeline_execution_id: str | None = None

    @cached_property
    def hook(self) -> MaiaHook:
        return MaiaHook(self.maia_conn_id)

    def execute(self, context: Context) -> str:
        return self._returning_id(self.run_and_wait(context))

    def submit(self, context: Context) -> MaiaPipelineRun:
        # Rendered templates are checked here, before any request.
        for name in ("project_id", "pipeline_name", "environment_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise DuneConfigurationError(f"{name} must be a non-empty string, got {value!r}.")
        scalars = scalar_variables_body(self.scalar_variables)
        grids = grid_variables_body(self.grid_variables)
        pid = self.hook.start_pipeline(
            self.project_id,
            self.pipeline_name,
            self.environment_name,
            scalar_variables=scalars,
            grid_variables=grids,
        )
        self.pipeline_execution_id = pid
        return self.run_from_ids({"project_id": self.project_id, "pipeline_execution_id": pid})

    def link_xcoms(self, run: RemoteRun) -> dict[str, str]:
        return {MaiaPipelineRunLink.key: maia_execution_url(run.ids["pipeline_execution_id"])}

    def run_from_ids(self, ids: Mapping[str, Any]) -> MaiaPipelineRun:
        return MaiaPipelineRun(
            self.hook,
            str(ids["project_id"]),
            str(ids["pipeline_execution_id"]),
            fail_on_skipped=self.fail_on_skipped,
        )

    def make_trigger(self, run: RemoteRun, wait: TriggerWait) -> MaiaPipelineTrigger:
        # Imported here: only a deferring task needs the trigger (and its import cost).
        from airflow_provider_dune.triggers.maia import MaiaPipelineTrigger

        return MaiaPipelineTrigger(
            project_id=run.ids["project_id"],
            pipeline_execution_id=run.ids["pipeline_execution_id"],
            maia_conn_id=self.maia_conn_id,
            fail_on_skipped=self.fail_on_skipped,
            cancel_on_kill=self.cancel_on_kill,
            **wait,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Called when the trigger fires: return the execution id or raise what went wrong."""
        warn_if_skipped(event, self.log)
        return super().execute_complete(context, event)


def _from_json(value: Any, name: str) -> Any:
    """A templated dict renders to a string unless the DAG renders native objects."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise DuneConfigurationError(
            f"{name} rendered to a string that is not JSON: {value[:200]!r}. Pass a dict, or set "
            "render_template_as_native_obj=True on the DAG."
        ) from None


def _scalar(value: Any, where: str) -> str:
    if not isinstance(value, _SCALAR_TYPES):
        raise DuneConfigurationError(f"{where} must be a string or a number, got {type(value).__name__}.")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scalar_variables_body(value: Any) -> dict[str, str] | None:
    """``scalarVariables`` as Maia takes it: variable name to string value."""
    value = _from_json(value, "scalar_variables")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DuneConfigurationError(f"scalar_variables must be a dict, got {type(value).__name__}.")
    return {str(name): _scalar(v, f"scalar variable {name!r}") for name, v in value.items()}


def grid_variables_body(value: Any) -> dict[str, list[list[str]]] | None:
    """``gridVariables`` as Maia takes it: variable name to rows of string cells."""
    value = _from_json(value, "grid_variables")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DuneConfigurationError(f"grid_variables must be a dict, got {type(value).__name__}.")
    body: dict[str, list[list[str]]] = {}
    for name, rows in value.items():
        if not isinstance(rows, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in rows):
            raise DuneConfigurationError(f"grid variable {name!r} must be a list of rows (lists of values).")
        where = f"a cell of grid variable {name!r}"
        body[str(name)] = [[_scalar(cell, where) for cell in row] for row in rows]
    return body
