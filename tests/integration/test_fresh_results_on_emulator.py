"""Reuse a fresh result instead of paying again, and wait for one: real HTTP on the emulator."""

from __future__ import annotations

import datetime
import time

import pytest

from airflow_provider_dune.exceptions import DuneConfigurationError
from airflow_provider_dune.hooks.dune import DuneHook, close_shared_async_session
from airflow_provider_dune.operators.dune import DuneRunQueryOperator
from airflow_provider_dune.operators.results import DuneResultsToStorageOperator
from airflow_provider_dune.sensors.dune import DuneQueryResultSensor
from airflow_provider_dune.triggers.dune import DuneLatestResultTrigger
from tests.airflow_runs import run_dag_source
from tests.helpers import FakeTI

EXECUTE_1003 = "/api/v1/query/1003/execute"


def executes(emulator) -> int:
    return emulator.request_log.count(method="POST", path_prefix=EXECUTE_1003)


def run_1003() -> str:
    ti = FakeTI()
    return DuneRunQueryOperator(task_id="first", query_id=1003, poll_interval=0.05).execute({"ti": ti})


def test_a_fresh_latest_result_is_reused_without_executing(dune_emulator):
    earlier = run_1003()
    ti = FakeTI()
    op = DuneRunQueryOperator(
        task_id="t", query_id=1003, max_result_age=3600, push_rows_to_xcom=True, poll_interval=0.05
    )
    assert op.execute({"ti": ti}) == earlier
    assert executes(dune_emulator) == 1  # only the earlier run
    assert ti.pushed["result_source"] == "reused"
    assert ti.pushed["credits_used"] == 0
    assert len(ti.pushed["rows"]) == 3  # the reused result, read as a run's would be


def test_a_stale_or_missing_result_is_executed(dune_emulator):
    ti = FakeTI()
    op = DuneRunQueryOperator(task_id="t", query_id=1003, max_result_age=3600, poll_interval=0.05)
    first = op.execute({"ti": ti})  # no result yet
    assert ti.pushed["result_source"] == "executed"
    time.sleep(0.05)
    ti = FakeTI()
    stale = DuneRunQueryOperator(task_id="t", query_id=1003, max_result_age=0.01, poll_interval=0.05)
    assert stale.execute({"ti": ti}) != first
    assert ti.pushed["result_source"] == "executed"
    assert executes(dune_emulator) == 2


def test_max_result_age_refuses_query_parameters():
    with pytest.raises(DuneConfigurationError, match="query_parameters"):
        DuneRunQueryOperator(task_id="t", query_id=1, query_parameters={"x": 1}, max_result_age=60)


@pytest.mark.parametrize("max_result_age", [None, 3600, 0.01], ids=["latest", "fresh", "stale"])
def test_results_to_storage_by_query_id(dune_emulator, tmp_path, max_result_age):
    earlier = run_1003()
    time.sleep(0.05)
    ti = FakeTI()
    op = DuneResultsToStorageOperator(
        task_id="t",
        query_id=1003,
        max_result_age=max_result_age,
        path=str(tmp_path / "blocks.csv"),
        poll_interval=0.05,
    )
    written = op.execute({"ti": ti})
    assert written["rows"] == 3
    if max_result_age == 0.01:
        assert written["execution_id"] != earlier and ti.pushed["result_source"] == "executed"
        assert executes(dune_emulator) == 2
    else:
        assert written["execution_id"] == earlier and executes(dune_emulator) == 1
        assert ti.pushed.get("result_source") == (None if max_result_age is None else "reused")


def test_the_sensor_waits_for_a_fresh_result(dune_emulator):
    sensor = DuneQueryResultSensor(task_id="s", query_id=1003, max_age=3600)
    ti = FakeTI()
    assert sensor.poke({"ti": ti}) is False  # never ran
    started = datetime.datetime.now(datetime.timezone.utc)
    execution_id = run_1003()
    assert sensor.poke({"ti": ti}) is True
    assert ti.pushed["latest_result"]["execution_id"] == execution_id
    # A moment after that run: not fresh until the next one.
    later = DuneQueryResultSensor(
        task_id="s", query_id=1003, newer_than=datetime.datetime.now(datetime.timezone.utc)
    )
    assert later.poke({"ti": FakeTI()}) is False
    assert DuneQueryResultSensor(task_id="s", query_id=1003, newer_than=started.isoformat()).poke(
        {"ti": FakeTI()}
    )


async def test_the_trigger_fires_once_the_result_is_fresh(dune_emulator):
    execution_id = DuneHook().execute_query(1003)
    dune_emulator.wait_for_execution(execution_id)
    trigger = DuneLatestResultTrigger(query_id=1003, max_age_seconds=3600, poll_interval=0.05)
    classpath, kwargs = trigger.serialize()
    assert DuneLatestResultTrigger(**kwargs).serialize() == (classpath, kwargs)
    try:
        event = await anext(trigger.run())
    finally:
        await close_shared_async_session()
    assert event.payload["status"] == "success"
    assert event.payload["latest_result"]["execution_id"] == execution_id


@pytest.mark.usefixtures("airflow_db")
def test_a_dag_waits_for_the_result_then_reuses_it(dune_emulator):
    dag_id = "dune_fresh_result_reused"
    result = run_dag_source(
        f"""
        import datetime
        from airflow_provider_dune.operators.dune import DuneRunQueryOperator
        from airflow_provider_dune.sensors.dune import DuneQueryResultSensor
        try:
            from airflow.sdk import DAG
        except ImportError:
            from airflow import DAG

        with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
            refresh = DuneRunQueryOperator(task_id="refresh", query_id=1003, poll_interval=0.05)
            fresh = DuneQueryResultSensor(
                task_id="fresh", query_id=1003, max_age=600, poke_interval=1, deferrable=True, defer_after=0
            )
            reuse = DuneRunQueryOperator(
                task_id="reuse", query_id=1003, max_result_age=600, poll_interval=0.05
            )
            refresh >> fresh >> reuse
        """,
        dag_id,
    )
    assert result.state == "success"
    assert result.xcom("reuse") == result.xcom("refresh")
    assert result.xcom("reuse", "result_source") == "reused"
    assert result.xcom("fresh", "latest_result")["execution_id"] == result.xcom("refresh")
    assert executes(dune_emulator) == 1
