"""
Run a query's predefined pipeline, then save the query's own result to storage.

``DuneRunQueryPipelineOperator`` calls ``POST /v1/query/{id}/pipeline/execute``: Dune refreshes
every materialized view the query reads, then runs the query. Each refreshed view is recorded as
an Airflow Asset (``dune://materialized-views/<view>``). The storage task picks the query's node
out of the pipeline's ``node_executions`` XCom by query id.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dune.operators.dune import DuneRunQueryPipelineOperator
from airflow_provider_dune.operators.results import DuneResultsToStorageOperator

QUERY_ID = int(os.environ.get("DUNE_DEMO_QUERY_ID", "1001"))
OUTPUT = os.environ.get("DUNE_DEMO_OUTPUT", f"file://{tempfile.gettempdir()}/dune-demo")

with DAG(
    dag_id="example_dune_query_pipeline",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    pipeline = DuneRunQueryPipelineOperator(
        task_id="run_query_pipeline", query_id=QUERY_ID, deferrable=True, poll_interval=2
    )
    save = DuneResultsToStorageOperator(
        task_id="save_query_result",
        source_task_id="run_query_pipeline",
        query_id=QUERY_ID,
        path=OUTPUT + "/top_projects_{{ ds_nodash }}.jsonl",
        format="jsonl",
    )
    pipeline >> save
