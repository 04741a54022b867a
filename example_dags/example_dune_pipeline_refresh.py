"""
Scheduled refresh: every day, run a Dune query and every materialized view it reads.

``DuneRunPipelineOperator(query_id=...)`` lets Dune work out the pipeline from the query's
lineage. A pipeline still running after ``defer_after`` seconds (5) is waited for in the
triggerer, so the task holds no worker slot meanwhile; the
triggerer polls Dune. Downstream tasks get the pipeline id and every node's execution id
from XCom.

Against the local emulator (``make demo``) query 1001 reads the materialized view
``dune.emulator.result_dex_daily_volume``, so the pipeline refreshes the view, then runs
the query. Against Dune, set ``DUNE_DEMO_QUERY_ID`` to one of your queries.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator

QUERY_ID = int(os.environ.get("DUNE_DEMO_QUERY_ID", "1001"))

with DAG(
    dag_id="example_dune_pipeline_refresh",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    refresh = DuneRunPipelineOperator(
        task_id="refresh_top_dex_projects",
        query_id=QUERY_ID,
        performance="medium",
        deferrable=True,
        poll_interval=2,
        timeout=30 * 60,
    )

    @task
    def report(node_executions: list[dict]) -> list[str]:
        """Log one line per pipeline node: what ran and where its results are."""
        lines = []
        for node in node_executions:
            what = f"query {node['query_id']}" if node["type"] == "query" else f"view {node['name']}"
            lines.append(
                f"node {node['node_id']}: {what} -> execution {node['execution_id']} ({node['status']})"
            )
        for line in lines:
            print(line)
        return lines

    report(refresh.output["node_executions"])
