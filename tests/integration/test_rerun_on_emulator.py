"""A retry after a failed pipeline reruns only what failed: a real DAG run on the emulator.

The pipeline refreshes the view (node 1), then runs query 1005, whose first run fails (node 2),
then query 1001 (node 3). Airflow retries the task; the retry submits nodes 2 and 3 only.
"""

from __future__ import annotations

import pytest

from airflow_provider_dune.hooks.dune import DuneHook
from tests.airflow_runs import run_dag_source

VIEW = "dune.emulator.result_dex_daily_volume"


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("rerun_failed_only", [True, False])
def test_the_retry_skips_the_view_refresh_that_had_succeeded(dune_emulator, rerun_failed_only):
    dag_id = f"dune_rerun_failed_only_{rerun_failed_only}"
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
                task_id="run",
                nodes=[
                    {{"id": 1, "materialized_view_refresh": {{"name": "{VIEW}"}}}},
                    {{"id": 2, "dependencies": [1], "query_execution": {{"query_id": 1005}}}},
                    {{"id": 3, "dependencies": [2], "query_execution": {{"query_id": 1001}}}},
                ],
                poll_interval=0.05,
                retries=1,
                retry_delay=datetime.timedelta(seconds=0),
                rerun_failed_only={rerun_failed_only},
            )
        """,
        dag_id,
    )
    assert result.task_states == {"run": "success"}
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/pipelines/execute") == 2
    refreshes = len(DuneHook().get_materialized_view(VIEW).last_execution_ids)
    nodes = result.xcom("run", "node_executions")
    # Every node of the pipeline, all succeeded: the XCom describes the whole pipeline.
    assert [(n["node_id"], n["status"]) for n in nodes] == [(i, "completed") for i in (1, 2, 3)]
    if rerun_failed_only:
        assert refreshes == 1  # the view was refreshed once, by the first try
        assert result.xcom("run", "skipped_nodes")[0].startswith(f"node 1 (view {VIEW}")
        # Node 1's execution is the first try's: carried over, not run again.
        assert result.xcom("run", "carried_nodes")[0]["execution_id"] == nodes[0]["execution_id"]
    else:
        assert refreshes == 2
