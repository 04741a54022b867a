"""
Run a query and stream its whole result to object storage as Parquet, page by page.

Memory stays flat however large the result: each page is written before the next is fetched.
The path is an Airflow ObjectStoragePath: a local ``file://`` path here; ``s3://bucket/...`` or
``gs://...`` with ``storage_conn_id`` in production. Needs ``airflow-provider-dune[parquet]``.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dune.operators.dune import DuneRunQueryOperator
from airflow_provider_dune.operators.results import DuneResultsToStorageOperator

QUERY_ID = int(os.environ.get("DUNE_DEMO_QUERY_ID", "1000"))
OUTPUT = os.environ.get("DUNE_DEMO_OUTPUT", f"file://{tempfile.gettempdir()}/dune-demo")

with DAG(
    dag_id="example_dune_results_to_storage",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    run_query = DuneRunQueryOperator(task_id="run_query", query_id=QUERY_ID, deferrable=True, poll_interval=2)
    save = DuneResultsToStorageOperator(
        task_id="save_as_parquet",
        source_task_id="run_query",
        base_path=OUTPUT,  # the rendered path may not leave this folder
        path="dex_daily_volume_{{ ds_nodash }}.parquet",
        format="parquet",
        page_size=10_000,
    )
    run_query >> save
