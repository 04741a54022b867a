"""
Use a query's latest result when it is fresh, instead of paying for a new run.

Some queries are refreshed on Dune's own schedule. This DAG waits (deferred, in the triggerer)
until the query's latest result is at most an hour old, then copies that very result to a file,
and a ``DuneRunQueryOperator`` with ``max_result_age`` shows the other way: it reuses the latest
result when fresh enough and executes the query only when not (XCom ``result_source`` says
which). Reading a latest result costs no execution credits. Against the local emulator the
first task runs query 1003 so that a fresh result exists; against Dune set ``DUNE_DEMO_QUERY_ID``
to a query Dune refreshes and drop that task.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dune.operators.dune import DuneRunQueryOperator
from airflow_provider_dune.operators.results import DuneResultsToStorageOperator
from airflow_provider_dune.sensors.dune import DuneQueryResultSensor

QUERY_ID = int(os.environ.get("DUNE_DEMO_QUERY_ID", "1003"))
OUTPUT = os.environ.get("DUNE_DEMO_OUTPUT", f"file://{tempfile.gettempdir()}/dune-demo")

with DAG(
    dag_id="example_dune_fresh_result",
    schedule="@hourly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    # Stands in for Dune's own schedule on the emulator.
    scheduled_refresh = DuneRunQueryOperator(task_id="scheduled_refresh", query_id=QUERY_ID, poll_interval=2)

    wait_for_fresh = DuneQueryResultSensor(
        task_id="wait_for_fresh_result",
        query_id=QUERY_ID,
        max_age=timedelta(hours=1),
        deferrable=True,
        poke_interval=60,
        timeout=6 * 60 * 60,
    )

    copy_latest = DuneResultsToStorageOperator(
        task_id="copy_latest_result",
        query_id=QUERY_ID,
        max_result_age=timedelta(hours=1),  # older: run the query first
        path=f"{OUTPUT}/query_{QUERY_ID}_{{{{ ts_nodash }}}}.csv",
    )

    reuse_or_run = DuneRunQueryOperator(
        task_id="reuse_or_run",
        query_id=QUERY_ID,
        max_result_age=timedelta(hours=1),
        push_rows_to_xcom=True,
        poll_interval=2,
    )

    scheduled_refresh >> wait_for_fresh >> [copy_latest, reuse_or_run]
