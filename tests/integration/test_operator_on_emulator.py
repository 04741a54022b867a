"""The pipeline operator against the local emulator: real HTTP, real SQL, real errors."""

from __future__ import annotations

import pytest

from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.operators.base import RemoteRunFailed
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from tests.airflow_runs import run_dag_source
from tests.helpers import FakeTI


def test_failing_query_reports_node_query_message_and_sql_position(dune_emulator):
    ti = FakeTI()
    with pytest.raises(RemoteRunFailed) as err:
        DuneRunPipelineOperator(task_id="t", query_id=1002, poll_interval=0.05).execute({"ti": ti})
    text = str(err.value)
    assert f"Dune pipeline {ti.pushed['pipeline_execution_id']} failed" in text
    assert "node 1 (query 1002)" in text
    assert "amount_usd_typo" in text
    assert "FAILED_TYPE_EXECUTION_FAILED at line 3, column 3" in text
    assert ti.pushed["node_executions"][0]["status"] == "failed"


def test_view_failure_skips_the_query_that_reads_it(dune_emulator):
    ti = FakeTI()
    nodes = [
        {"id": 1, "query_execution": {"query_id": 1002}},
        {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1003}},
    ]
    with pytest.raises(RemoteRunFailed, match=r"node 1 \(query 1002\)"):
        DuneRunPipelineOperator(task_id="t", nodes=nodes, poll_interval=0.05).execute({"ti": ti})
    assert [n["status"] for n in ti.pushed["node_executions"]] == ["failed", "skipped"]


@pytest.mark.dune_emulator(execution_seconds=5)
def test_on_kill_cancels_the_running_node(dune_emulator):
    op = DuneRunPipelineOperator(task_id="t", query_id=1003, wait_for_termination=False)
    ti = FakeTI()
    pid = op.execute({"ti": ti})
    op.on_kill()
    status = DuneHook().get_pipeline_status(pid)
    assert status.status == "cancelled"
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/execution/") == 1


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
