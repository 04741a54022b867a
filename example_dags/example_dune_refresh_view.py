"""
Refresh a Dune materialized view; the refresh is recorded as an Airflow Asset.

The task's outlet is ``dune_view_asset(VIEW)`` (URI ``dune://materialized-views/<view>``), so
another DAG can run whenever the view is fresh::

    with DAG("uses_the_view", schedule=[dune_view_asset("dune.my_team.result_dex_daily_volume")]):
        ...
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dune.operators.dune import DuneRefreshMaterializedViewOperator

VIEW = os.environ.get("DUNE_DEMO_VIEW", "dune.emulator.result_dex_daily_volume")

with DAG(
    dag_id="example_dune_refresh_view",
    schedule="@hourly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "dune"],
    doc_md=__doc__,
) as dag:
    DuneRefreshMaterializedViewOperator(
        task_id="refresh_dex_daily_volume",
        name=VIEW,
        deferrable=True,
        poll_interval=2,
        timeout=30 * 60,
    )
