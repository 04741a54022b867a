"""
Run one saved Dune query, wait for it in the triggerer, and use its result metadata downstream.

``DuneRunQueryOperator`` starts ``POST /v1/query/{id}/execute`` and defers while Dune runs the
query. XCom ``execution`` holds the final state, timestamps and ``result_metadata`` (row count,
columns, datapoints, bytes). Against the local emulator (``make demo``) query 1001 lists DEX
projects by volume; against Dune, set ``DUNE_DEMO_QUERY_ID``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_dune.operators.dune import DuneRunQueryOperator

QUERY_ID = int(os.environ.get("DUNE_DEMO_QUERY_ID", "1001"))

with DAG(
    dag_id="example_dune_run_query",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    run_query = DuneRunQueryOperator(
        task_id="run_query",
        query_id=QUERY_ID,
        query_parameters={"min_volume_usd": 0},
        performance="medium",
        deferrable=True,
        poll_interval=2,
        timeout=30 * 60,
    )

    @task
    def describe(execution: dict) -> str:
        meta = execution["result_metadata"] or {}
        line = f"{execution['state']}: {meta.get('total_row_count')} rows, columns {meta.get('column_names')}"
        print(line)
        return line

    describe(run_query.output["execution"])
