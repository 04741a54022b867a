"""
A pipeline with a credit budget, whose retry reruns only what failed.

Node 1 refreshes the view ``dune.emulator.result_dex_daily_volume``; node 2 runs query 1005,
which on the local emulator fails on its first run (and succeeds after); node 3 runs query
1001. The first try fails at node 2. Airflow retries the task, and the retry submits only nodes
2 and 3: the view refresh that had succeeded is not run (nor billed) again, and the log and XCom
``skipped_nodes`` name it. ``max_credits`` bounds what one try may spend: past it, the nodes
still running are cancelled and the task fails saying what was spent. XCom ``node_executions``
has each node's ``credits``, ``credits_used`` the total.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator

VIEW = os.environ.get("DUNE_DEMO_VIEW", "dune.emulator.result_dex_daily_volume")

with DAG(
    dag_id="example_dune_budget_and_rerun",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    DuneRunPipelineOperator(
        task_id="refresh_then_report",
        nodes=[
            {"id": 1, "materialized_view_refresh": {"name": VIEW}},
            {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1005}},
            {"id": 3, "dependencies": [2], "query_execution": {"query_id": 1001}},
        ],
        max_credits=100,
        retries=1,
        retry_delay=timedelta(seconds=1),
        poll_interval=2,
    )
