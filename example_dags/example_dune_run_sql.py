"""
Run an ad-hoc SQL statement on Dune and hand its (small) result to the next task through XCom.

``push_rows_to_xcom=True`` is opt-in and capped by ``max_xcom_rows``: past the cap the task fails
and says to use ``DuneResultsToStorageOperator`` instead. The SQL reads the emulator's sample
``dex.trades`` table; on Dune use any table you can query.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_dune.operators.dune import DuneRunSQLOperator

with DAG(
    dag_id="example_dune_run_sql",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    top_projects = DuneRunSQLOperator(
        task_id="top_projects",
        sql="""
            SELECT project, round(sum(amount_usd), 2) AS volume_usd
            FROM dex.trades
            GROUP BY project
            ORDER BY volume_usd DESC
            LIMIT 5
        """,
        push_rows_to_xcom=True,
        max_xcom_rows=100,
        poll_interval=1,
    )

    @task
    def report(rows: list[dict]) -> int:
        for row in rows:
            print(f"{row['project']}: {row['volume_usd']:,}")
        return len(rows)

    report(top_projects.output["rows"])
