"""
Start a Dune execution in one task and wait for it in another with a deferrable sensor.

Useful when the execution is started elsewhere (another DAG, a script, the Dune UI) and only its
``execution_id`` is known, or when other work belongs between start and wait.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dune.operators.dune import DuneRunQueryOperator
from airflow_provider_dune.sensors.dune import DuneExecutionSensor

QUERY_ID = int(os.environ.get("DUNE_DEMO_QUERY_ID", "1003"))

with DAG(
    dag_id="example_dune_execution_sensor",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    start = DuneRunQueryOperator(task_id="start_query", query_id=QUERY_ID, wait_for_termination=False)
    wait = DuneExecutionSensor(
        task_id="wait_for_query",
        execution_id=start.output["execution_id"],
        deferrable=True,
        poke_interval=2,
        timeout=30 * 60,
    )
    start >> wait
