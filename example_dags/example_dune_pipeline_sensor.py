"""
Start a pipeline in one task and wait for it in another with a deferrable sensor.

Useful when the wait belongs elsewhere in the DAG (other work runs in between), or when
the pipeline is started outside Airflow and only its ``pipeline_execution_id`` is known.
The sensor defers to the triggerer, so waiting holds no worker slot.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from airflow_provider_dune.sensors.dune import DunePipelineSensor

QUERY_ID = int(os.environ.get("DUNE_DEMO_QUERY_ID", "1001"))

with DAG(
    dag_id="example_dune_pipeline_sensor",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    start = DuneRunPipelineOperator(
        task_id="start_pipeline",
        query_id=QUERY_ID,
        wait_for_termination=False,
    )
    wait = DunePipelineSensor(
        task_id="wait_for_pipeline",
        pipeline_execution_id=start.output["pipeline_execution_id"],
        deferrable=True,
        poke_interval=2,
        timeout=30 * 60,
    )
    start >> wait
