"""
An explicit pipeline: refresh a materialized view, then run the query that reads it.

``nodes`` spells the pipeline out: each node has an integer ``id``, the ids it depends on,
and either ``query_execution`` or ``materialized_view_refresh``. The list is checked before
anything is sent (unknown dependencies, cycles, performance tiers), so a typo fails the
task at once instead of costing credits.

Against the local emulator the ids and names below exist; against Dune, replace them
with your own view and query.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator

VIEW_NAME = os.environ.get("DUNE_DEMO_VIEW", "dune.emulator.result_dex_daily_volume")
QUERY_ID = int(os.environ.get("DUNE_DEMO_QUERY_ID", "1001"))

with DAG(
    dag_id="example_dune_explicit_nodes",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    DuneRunPipelineOperator(
        task_id="refresh_view_then_query",
        nodes=[
            {"id": 1, "materialized_view_refresh": {"name": VIEW_NAME, "performance": "medium"}},
            {
                "id": 2,
                "dependencies": [1],
                "query_execution": {"query_id": QUERY_ID, "query_parameters": {"min_volume_usd": 1000}},
            },
        ],
        performance="medium",
        poll_interval=2,
    )
