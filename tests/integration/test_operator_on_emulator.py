"""The pipeline operator against the local emulator: real HTTP, real SQL, real errors."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest

from airflow_provider_dune.assets import dune_view_asset
from airflow_provider_dune.emulator import DuneEmulator
from airflow_provider_dune.emulator.pipelines import NODE_VOCABULARIES
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.models.dune import node_state_outcome
from airflow_provider_dune.operators.base import RemoteRunFailed
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from airflow_provider_dune.runs.outcome import RunOutcome
from tests.airflow_runs import run_dag_source
from tests.helpers import FakeTI

VIEW = "dune.emulator.result_dex_daily_volume"


# Dune does not document node status strings: every test here runs under each vocabulary the
# emulator can speak, so failure, progress, Asset events and cancel rest on no single guess.
@pytest.fixture(params=sorted(NODE_VOCABULARIES))
def pipeline_emulator(request, monkeypatch):
    with DuneEmulator(execution_seconds=0, node_vocabulary=request.param) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_DUNE_DEFAULT", emulator.airflow_conn_json())
        yield emulator


def outcomes(nodes):
    return [node_state_outcome(n["status"]) if not n["error"] else RunOutcome.FAILED for n in nodes]


def test_failing_query_reports_node_query_message_and_sql_position(pipeline_emulator):
    ti = FakeTI()
    with pytest.raises(RemoteRunFailed) as err:
        DuneRunPipelineOperator(task_id="t", query_id=1002, poll_interval=0.05).execute({"ti": ti})
    text = str(err.value)
    assert f"Dune pipeline {ti.pushed['pipeline_execution_id']} failed" in text
    assert "node 1 (query 1002)" in text
    assert "amount_usd_typo" in text
    assert "FAILED_TYPE_EXECUTION_FAILED at line 3, column 3" in text
    assert outcomes(ti.pushed["node_executions"]) == [RunOutcome.FAILED]


def test_view_failure_skips_the_query_that_reads_it(pipeline_emulator):
    ti = FakeTI()
    nodes = [
        {"id": 1, "query_execution": {"query_id": 1002}},
        {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1003}},
    ]
    with pytest.raises(RemoteRunFailed, match=r"node 1 \(query 1002\)"):
        DuneRunPipelineOperator(task_id="t", nodes=nodes, poll_interval=0.05).execute({"ti": ti})
    failed, downstream = ti.pushed["node_executions"]
    assert outcomes([failed]) == [RunOutcome.FAILED]
    assert downstream["execution_id"] is None  # never ran
    assert node_state_outcome(downstream["status"]) is not RunOutcome.SUCCEEDED


def test_success_progress_and_the_view_asset_event(pipeline_emulator):
    ti = FakeTI()
    events: dict = defaultdict(SimpleNamespace)
    nodes = [
        {"id": 1, "materialized_view_refresh": {"name": VIEW}},
        {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1001}},
    ]
    op = DuneRunPipelineOperator(task_id="t", nodes=nodes, poll_interval=0.05)
    pid = op.execute({"ti": ti, "outlet_events": events})
    assert DuneHook().get_pipeline_status(pid).progress() == "2/2 nodes done"
    assert outcomes(ti.pushed["node_executions"]) == [RunOutcome.SUCCEEDED, RunOutcome.SUCCEEDED]
    assert events[dune_view_asset(VIEW)].extra == {"view": VIEW, "pipeline_execution_id": pid}


def test_on_kill_cancels_the_running_node(pipeline_emulator):
    pipeline_emulator.execution_seconds = 5
    op = DuneRunPipelineOperator(task_id="t", query_id=1003, wait_for_termination=False)
    ti = FakeTI()
    pid = op.execute({"ti": ti})
    op.on_kill()
    status = DuneHook().get_pipeline_status(pid)
    # Dune documents no "cancelled" pipeline status: the pipeline ends completed, with an error.
    assert status.outcome is RunOutcome.FAILED and "was cancelled" in (status.error or "")
    assert [node.outcome for node in status.nodes] == [RunOutcome.FAILED]
    assert pipeline_emulator.request_log.count(method="POST", path_prefix="/api/v1/execution/") == 1


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_failed_pipeline_fails_the_airflow_task(dune_emulator, deferrable):
    dag_id = f"dune_emulated_failure_{deferrable}"
    result = run_dag_source(
        f"""
        import datetime
        from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
        try:
            from airflow.sdk import DAG
        except ImportError:
            from airflow import DAG

        with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
            DuneRunPipelineOperator(
                task_id="run", query_id=1002, poll_interval=0.05, deferrable={deferrable}, defer_after=0
            )
        """,
        dag_id,
    )
    assert result.state == "failed"
    assert result.xcom("run", "node_executions")[0]["status"] == "failed"
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/pipelines/execute") == 1
