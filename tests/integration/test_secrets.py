"""The API key stays in the connection: not in logs, XCom, trigger kwargs, errors or URLs."""

from __future__ import annotations

import pytest

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from tests.airflow_runs import run_dag_source
from tests.helpers import FakeTI

KEY = "secret-scan-key-5a1f0c77d2"

DAG = """
import datetime
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
    DuneRunPipelineOperator(task_id="ok", query_id=1001, poll_interval=0.05, deferrable=True, defer_after=0)
    DuneRunPipelineOperator(task_id="broken", query_id=1002, poll_interval=0.05, deferrable=False)
"""


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(api_key=KEY, execution_seconds=0.2)
def test_a_dag_run_leaves_the_key_nowhere(dune_emulator, capfd, caplog):
    result = run_dag_source(DAG.format(dag_id="dune_secret_scan"), "dune_secret_scan")
    assert result.task_states == {"ok": "success", "broken": "failed"}  # both paths ran, one failed loudly

    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    assert "Dune pipeline" in logs  # the scan looked at real task output
    assert KEY not in logs
    assert KEY not in repr(result.xcoms)
    assert dune_emulator.request_log.count(key_in_url=True) == 0
    assert len(dune_emulator.request_log) > 0


@pytest.mark.dune_emulator(api_key=KEY)
def test_the_deferred_trigger_row_holds_no_key(dune_emulator):
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        DuneRunPipelineOperator(task_id="t", query_id=1001, deferrable=True, defer_after=0).execute(
            {"ti": FakeTI()}
        )
    classpath, kwargs = deferred.value.trigger.serialize()
    assert KEY not in repr(kwargs) + repr(deferred.value.trigger) + classpath
