"""MaiaRunPipelineOperator and MaiaPipelineSensor: unit checks, then real Airflow runs on the emulator."""

from __future__ import annotations

import time

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_dune.exceptions import DuneConfigurationError, MaiaApiError
from airflow_provider_dune.operators.base import RemoteRunFailed
from airflow_provider_dune.operators.maia import MaiaRunPipelineOperator
from airflow_provider_dune.sensors.maia import MaiaPipelineSensor
from airflow_provider_dune.triggers.maia import MaiaPipelineTrigger
from tests.airflow_runs import run_dag_source
from tests.helpers import FakeTI
from tests.maia.conftest import CLIENT_SECRET


def operator(**kwargs) -> MaiaRunPipelineOperator:
    kwargs.setdefault("project_id", "3fa85f64-5717-4562-b3fc-2c963f66afa6")
    kwargs.setdefault("environment_name", "Dev")
    return MaiaRunPipelineOperator(task_id="run", poll_interval=0.05, **kwargs)


WAIT = {"poll_interval": 1.0, "end_time": None, "fire_not_before": None}


def test_worker_wait_pushes_ids_and_status(maia_emulator):
    ti = FakeTI()
    pid = operator(pipeline_name="load-orders", scalar_variables={"n": 3, "flag": True}).execute({"ti": ti})
    assert ti.pushed == {
        "pipeline_execution_id": pid,
        "project_id": maia_emulator.maia_project_id,
        "pipeline_status": "SUCCESS",
        # The "Maia pipeline run" extra link: the execution in Maia's observability dashboard.
        "maia_pipeline_run_url": f"https://app.matillion.com/observability-dashboard/pipeline/{pid}",
    }


def test_a_failed_pipeline_says_which_step_failed_and_why(maia_emulator):
    ti = FakeTI()
    with pytest.raises(RemoteRunFailed) as failed:
        operator(pipeline_name="nightly-fail").execute({"ti": ti})
    pid = ti.pushed["pipeline_execution_id"]
    assert str(failed.value).splitlines() == [
        f"Maia pipeline execution {pid} (project {maia_emulator.maia_project_id}) failed.",
        "  step 'Transform orders' FAILED: SQL compilation error: Object 'EMULATOR.PUBLIC.ORDERS_STAGE' "
        "does not exist (pipeline 'nightly-fail')",
        f"  Open it in Maia: https://app.matillion.com/observability-dashboard/pipeline/{pid}",
    ]
    assert ti.pushed["pipeline_status"] == "FAILED"


def test_skipped_warns_or_fails(maia_emulator, caplog, capsys):
    op = operator(pipeline_name="skip-today")
    op.execute({"ti": FakeTI()})
    # Airflow 2 logs through logging (caplog), Airflow 3 through structlog (stdout).
    assert "was SKIPPED" in caplog.text + capsys.readouterr().out
    with pytest.raises(RemoteRunFailed, match="fail_on_skipped=True"):
        operator(pipeline_name="skip-today", fail_on_skipped=True).execute({"ti": FakeTI()})


def test_start_errors_carry_maia_violations(maia_emulator):
    with pytest.raises(MaiaApiError, match="not published"):
        operator(pipeline_name="unpublished-thing").execute({"ti": FakeTI()})


def test_deferral_hands_the_trigger_ids_only(maia_emulator):
    op = operator(
        pipeline_name="load-orders", deferrable=True, defer_after=0, timeout=60, fail_on_skipped=True
    )
    ti = FakeTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti})
    trigger = deferred.value.trigger
    assert isinstance(trigger, MaiaPipelineTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["pipeline_execution_id"] == ti.pushed["pipeline_execution_id"]
    assert kwargs["project_id"] == maia_emulator.maia_project_id
    assert kwargs["fail_on_skipped"] is True and kwargs["end_time"] is not None
    assert CLIENT_SECRET not in repr(kwargs)
    assert deferred.value.method_name == "execute_complete"


def test_a_long_run_defers_with_the_event_hold_through_the_shared_base(maia_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW__DUNE__DEFERRAL_EVENT_HOLD", "7")
    op = operator(
        project_id=maia_emulator.maia_project_id,
        pipeline_name="load-orders",
        scalar_variables={"emulator_seconds": "30"},
        deferrable=True,
        defer_after=0.2,
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})
    assert deferred.value.trigger.fire_not_before == pytest.approx(time.time() + 7, abs=2)


def test_execute_complete_turns_events_into_results(maia_conn):
    op = operator(pipeline_name="x")
    ok = {"status": "success", "pipeline_execution_id": "e1", "project_id": "p", "pipeline_status": "SUCCESS"}
    assert op.execute_complete({"ti": FakeTI()}, {**ok, "message": "fine"}) == "e1"
    bad = {**ok, "status": "error", "pipeline_status": "FORBIDDEN", "message": "was refused (FORBIDDEN)"}
    with pytest.raises(RemoteRunFailed, match="FORBIDDEN"):
        op.execute_complete({"ti": FakeTI()}, bad)


def test_on_kill_cancels_with_the_documented_patch(maia_emulator):
    op = operator(
        pipeline_name="long", wait_for_termination=False, scalar_variables={"emulator_seconds": "30"}
    )
    pid = op.execute({"ti": FakeTI()})
    op.on_kill()
    assert maia_emulator.maia_execution_status(pid) in ("CANCELLING", "CANCELLED")
    assert maia_emulator.request_log.count(method="PATCH") == 1


def test_timeout_cancels_the_run(maia_emulator):
    op = operator(pipeline_name="long", timeout=0.2, scalar_variables={"emulator_seconds": "30"})
    with pytest.raises(RemoteRunFailed, match="Timed out"):
        op.execute({"ti": FakeTI()})
    assert maia_emulator.request_log.count(method="PATCH") == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scalar_variables": {"a": {"nested": 1}}}, "scalar variable 'a'"),
        ({"scalar_variables": "not json"}, "not JSON"),
        ({"grid_variables": {"g": ["row"]}}, "list of rows"),
        ({"pipeline_name": ""}, "pipeline_name must be a non-empty string"),
    ],
)
def test_bad_arguments_fail_before_any_request(maia_emulator, kwargs, match):
    kwargs.setdefault("pipeline_name", "p")
    with pytest.raises(DuneConfigurationError, match=match):
        operator(**kwargs).execute({"ti": FakeTI()})
    assert maia_emulator.request_log.count(path_prefix="/dpc/") == 0


def test_sensor_pokes_until_the_end(maia_emulator):
    op = operator(pipeline_name="load-orders", wait_for_termination=False)
    pid = op.execute({"ti": FakeTI()})
    sensor = MaiaPipelineSensor(
        task_id="wait", project_id=maia_emulator.maia_project_id, pipeline_execution_id=pid
    )
    assert sensor.poke({"ti": FakeTI()}) is False
    failing = operator(pipeline_name="will-fail", scalar_variables={"emulator_seconds": "0"})
    failed_pid = failing.submit({"ti": FakeTI()}).pipeline_execution_id
    with pytest.raises(RemoteRunFailed, match="failed"):
        MaiaPipelineSensor(
            task_id="w", project_id=maia_emulator.maia_project_id, pipeline_execution_id=failed_pid
        ).poke({"ti": FakeTI()})
    assert sensor.make_trigger(WAIT).cancel_on_kill is False


# ------------------------------------------------------------------ real Airflow runs (dag.test)

DAG_SOURCE = """
import datetime
from airflow_provider_dune.operators.maia import MaiaRunPipelineOperator
from airflow_provider_dune.sensors.maia import MaiaPipelineSensor
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
    run = MaiaRunPipelineOperator(
        task_id="run",
        project_id="{project}",
        pipeline_name="{pipeline}",
        environment_name="Dev",
        scalar_variables={{"run_date": "{{{{ ds }}}}"}},
        poll_interval=0.05,
        deferrable={deferrable},
        defer_after=0,
    )
    start = MaiaRunPipelineOperator(
        task_id="start",
        project_id="{project}",
        pipeline_name="{pipeline}",
        environment_name="Dev",
        wait_for_termination=False,
    )
    wait = MaiaPipelineSensor(
        task_id="wait",
        project_id="{project}",
        pipeline_execution_id=start.output["pipeline_execution_id"],
        poke_interval=0.05,
        deferrable={deferrable},
        defer_after=0,
    )
    start >> wait
"""


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
@pytest.mark.parametrize(("pipeline", "dag_state"), [("load-orders", "success"), ("nightly-fail", "failed")])
def test_operator_and_sensor_in_real_airflow(maia_emulator, deferrable, pipeline, dag_state):
    dag_id = f"maia_{pipeline.replace('-', '_')}_{deferrable}"
    source = DAG_SOURCE.format(
        dag_id=dag_id, project=maia_emulator.maia_project_id, pipeline=pipeline, deferrable=deferrable
    )
    result = run_dag_source(source, dag_id)
    assert result.state == dag_state
    expected = "success" if dag_state == "success" else "failed"
    assert result.task_states == {"run": expected, "start": "success", "wait": expected}
    final = "SUCCESS" if dag_state == "success" else "FAILED"
    assert result.xcom("run", "pipeline_status") == final
    assert result.xcom("wait", "pipeline_status") == final
    pid = result.xcom("run", "pipeline_execution_id")
    assert maia_emulator.maia_execution_status(pid) == final
    assert maia_emulator.request_log.count(method="POST", path_prefix="/dpc/") == 2
    # Neither the secret nor a token is stored anywhere Airflow keeps task data.
    assert CLIENT_SECRET not in repr(result.xcoms) and "maia-emulated-" not in repr(result.xcoms)
