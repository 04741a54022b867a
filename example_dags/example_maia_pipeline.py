"""
Run a Maia (Matillion Data Productivity Cloud) pipeline, then wait for a second one with a sensor.

``load_orders`` starts the published pipeline ``load-orders`` in the ``Dev`` environment with
a scalar variable, and waits for it in the triggerer (no worker slot held). ``start_marts``
starts ``refresh-marts`` without waiting; ``wait_for_marts`` waits for it with a deferrable
sensor, as you would for a pipeline started elsewhere.

Connection ``maia_default``: client id as login, client secret as password, ``{"region": "eu1"}``
in the extras. Against the local emulator, ``DuneEmulator.maia_airflow_conn_json()`` gives it;
the emulator's project id is the default below.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dune.operators.maia import MaiaRunPipelineOperator
from airflow_provider_dune.sensors.maia import MaiaPipelineSensor

PROJECT_ID = os.environ.get("MAIA_DEMO_PROJECT_ID", "3fa85f64-5717-4562-b3fc-2c963f66afa6")
ENVIRONMENT = os.environ.get("MAIA_DEMO_ENVIRONMENT", "Dev")

with DAG(
    dag_id="example_maia_pipeline",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "maia"],
    doc_md=__doc__,
) as dag:
    load_orders = MaiaRunPipelineOperator(
        task_id="load_orders",
        project_id=PROJECT_ID,
        pipeline_name="load-orders",
        environment_name=ENVIRONMENT,
        scalar_variables={"load_date": "{{ ds }}"},
        deferrable=True,
        poll_interval=2,
        timeout=60 * 60,
    )
    start_marts = MaiaRunPipelineOperator(
        task_id="start_marts",
        project_id=PROJECT_ID,
        pipeline_name="refresh-marts",
        environment_name=ENVIRONMENT,
        wait_for_termination=False,
    )
    wait_for_marts = MaiaPipelineSensor(
        task_id="wait_for_marts",
        project_id=PROJECT_ID,
        pipeline_execution_id=start_marts.output["pipeline_execution_id"],
        deferrable=True,
        poke_interval=2,
        timeout=60 * 60,
    )
    load_orders >> start_marts >> wait_for_marts
