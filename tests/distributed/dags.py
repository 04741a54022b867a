"""The DAG files of the distributed suite (file stem -> source).

``FAILOVER``: 200 deferrable Dune and Maia tasks, all waiting in the triggerers at once:
pipelines, queries and SQL the tasks start, sensors on runs the test started (their ids come
in the run's ``conf``), Maia pipelines and a Maia sensor. ``WORKER``: one non-deferrable
pipeline task that polls in its Celery worker, with a retry.
"""

from __future__ import annotations

FAILOVER_DAG_ID = "distributed_failover"
WORKER_DAG_ID = "distributed_worker_killed"
WORKER_TASK_ID = "refresh_top_projects"
WORKER_CONN_ID = "dune_worker"
POLL_SECONDS = 5

# How many tasks of each kind the failover DAG holds (200 in all).
COUNTS = {
    "pipeline": 70,  # DuneRunPipelineOperator, two query nodes (see NODES)
    "query": 40,  # DuneRunQueryOperator, query 1003
    "sql": 20,  # DuneRunSQLOperator
    "pipeline_sensor": 25,  # DunePipelineSensor on a pipeline the test started
    "execution_sensor": 15,  # DuneExecutionSensor on a query the test started
    "maia": 20,  # MaiaRunPipelineOperator
    "maia_sensor": 10,  # MaiaPipelineSensor on a Maia run the test started
}
TASK_COUNT = sum(COUNTS.values())

_HEADER = """
import datetime

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG
"""

FAILOVER = (
    _HEADER
    + f"""
from airflow_provider_dune.operators.dune import (
    DuneRunPipelineOperator,
    DuneRunQueryOperator,
    DuneRunSQLOperator,
)
from airflow_provider_dune.operators.maia import MaiaRunPipelineOperator
from airflow_provider_dune.sensors.dune import DuneExecutionSensor, DunePipelineSensor
from airflow_provider_dune.sensors.maia import MaiaPipelineSensor

COUNTS = {COUNTS!r}
POLL = {POLL_SECONDS}
# Query nodes only: the emulator's DuckDB refuses concurrent refreshes of one view (a catalog
# write-write conflict), which 70 lineage pipelines of query 1001 would all start at once.
NODES = [
    {{"id": 1, "query_execution": {{"query_id": 1003}}}},
    {{"id": 2, "dependencies": [1], "query_execution": {{"query_id": 1001}}}},
]
PROJECT = "{{{{ dag_run.conf['maia_project'] }}}}"

with DAG(
    "{FAILOVER_DAG_ID}",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=250,
    default_args={{"retries": 0, "deferrable": True}},
):
    # The sensors first: the runs they wait for started before the DAG run.
    SENSOR_FIRST = 10
    for n in range(COUNTS["pipeline"]):
        DuneRunPipelineOperator(task_id=f"pipeline_{{n:03}}", nodes=NODES, poll_interval=POLL)
    for n in range(COUNTS["query"]):
        DuneRunQueryOperator(task_id=f"query_{{n:03}}", query_id=1003, poll_interval=POLL)
    for n in range(COUNTS["sql"]):
        DuneRunSQLOperator(task_id=f"sql_{{n:03}}", sql=f"SELECT {{n}} AS n", poll_interval=POLL)
    for n in range(COUNTS["pipeline_sensor"]):
        DunePipelineSensor(
            priority_weight=SENSOR_FIRST,
            task_id=f"pipeline_sensor_{{n:03}}",
            pipeline_execution_id=f"{{{{{{{{ dag_run.conf['pipelines'][{{n}}] }}}}}}}}",
            poke_interval=POLL,
        )
    for n in range(COUNTS["execution_sensor"]):
        DuneExecutionSensor(
            priority_weight=SENSOR_FIRST,
            task_id=f"execution_sensor_{{n:03}}",
            execution_id=f"{{{{{{{{ dag_run.conf['executions'][{{n}}] }}}}}}}}",
            poke_interval=POLL,
        )
    for n in range(COUNTS["maia"]):
        MaiaRunPipelineOperator(
            task_id=f"maia_{{n:03}}",
            project_id=PROJECT,
            pipeline_name="daily-load",
            environment_name="Prod",
            poll_interval=POLL,
        )
    for n in range(COUNTS["maia_sensor"]):
        MaiaPipelineSensor(
            priority_weight=SENSOR_FIRST,
            task_id=f"maia_sensor_{{n:03}}",
            project_id=PROJECT,
            pipeline_execution_id=f"{{{{{{{{ dag_run.conf['maia_runs'][{{n}}] }}}}}}}}",
            poke_interval=POLL,
        )
"""
)

WORKER = (
    _HEADER
    + f"""
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator

with DAG(
    "{WORKER_DAG_ID}",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
):
    DuneRunPipelineOperator(
        task_id="{WORKER_TASK_ID}",
        query_id=1001,
        dune_conn_id="{WORKER_CONN_ID}",
        deferrable=False,
        poll_interval=1,
        retries=1,
        retry_delay=datetime.timedelta(seconds=1),
    )
"""
)

ALL = {FAILOVER_DAG_ID: FAILOVER, WORKER_DAG_ID: WORKER}
