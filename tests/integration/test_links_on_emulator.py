"""Every operator links to what it ran: the query on dune.com, or the run in Maia."""

from __future__ import annotations

from unittest import mock

from airflow_provider_dune.links.dune import DuneQueryLink
from airflow_provider_dune.models.maia import MaiaExecutionDetails
from airflow_provider_dune.operators.dune import (
    DuneRefreshMaterializedViewOperator,
    DuneRunPipelineOperator,
    DuneRunQueryOperator,
    DuneRunSQLOperator,
)
from airflow_provider_dune.operators.results import DuneResultsToStorageOperator
from airflow_provider_dune.runs.maia import MaiaPipelineRun
from tests.helpers import FakeTI

VIEW = "dune.emulator.result_dex_daily_volume"


def link_after(op) -> str | None:
    ti = FakeTI()
    op.execute({"ti": ti})
    return ti.pushed.get(DuneQueryLink.key)


def test_each_dune_operator_links_to_the_query_it_ran(dune_emulator, tmp_path):
    nodes = [
        {"id": 1, "materialized_view_refresh": {"name": VIEW}},
        {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1001}},
    ]
    assert link_after(DuneRunPipelineOperator(task_id="p", nodes=nodes, poll_interval=0.05)).endswith(
        "/queries/1001"
    )
    assert link_after(DuneRunQueryOperator(task_id="q", query_id=1003, poll_interval=0.05)).endswith(
        "/queries/1003"
    )
    # A view's link is its own query's page: 1000 builds the view.
    view = DuneRefreshMaterializedViewOperator(task_id="v", name=VIEW, poll_interval=0.05)
    assert link_after(view) == "https://dune.com/queries/1000"
    # Ad-hoc SQL has no page on dune.com: no link rather than a wrong one.
    assert link_after(DuneRunSQLOperator(task_id="s", sql="SELECT 1", poll_interval=0.05)) is None
    export = DuneResultsToStorageOperator(task_id="e", query_id=1003, path=str(tmp_path / "x.csv"))
    assert link_after(export) == "https://dune.com/queries/1003"
    assert {type(link) for op in (view, export) for link in op.operator_extra_links} == {DuneQueryLink}


def test_a_maia_failure_the_api_explains_no_further_says_so():
    hook = mock.Mock()
    hook.get_execution_details.return_value = MaiaExecutionDetails()
    details = MaiaPipelineRun(hook, "p", "e1").failure_details({"pipeline_status": "FAILED"})
    assert details.splitlines() == [
        "  Maia's API says nothing more about this failure.",
        "  Open it in Maia: https://app.matillion.com/observability-dashboard/pipeline/e1",
    ]
