"""One deferred pipeline task pushed through real, separately started Airflow processes.

Everything else in the suite runs tasks in-process (``dag.test()``); this test starts the
components a deployment runs - scheduler, triggerer, and on Airflow 3 the DAG processor and
the API server that task processes report to - as subprocesses on a throwaway SQLite
database, with the Dune emulator (in this process) standing in for Dune. The task defers,
the triggerer polls the pipeline, the scheduler resumes the task in ``execute_complete``.

It checks what only a real deployment exercises: the trigger survives serialization into the
``trigger`` table and is re-created in another process, the connection (and its API key) is
looked up there rather than carried along, the pipeline is started exactly once although the
task runs twice, and the key reaches no log file and no database row.

Runs in about 30-45 s on a 2-core machine, on Airflow 2.11 and 3.x.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.deployment import AIRFLOW_VERSION, AirflowDeployment, airflow_deployment, reported, text
from tests.e2e.dune_paths import EXECUTE_PIPELINE, pipeline_status

DAG_ID = "e2e_dune_deferred_pipeline"
TASK_ID = "refresh_top_projects"
TRIGGER_CLASSPATH = "airflow_provider_dune.triggers.dune.DunePipelineTrigger"
API_KEY = "dune-e2e-key-3b8e61d0f4c2"
# Each of the 2 nodes runs this long, so the task stays deferred through several status polls
# and the trigger fires well after the worker that deferred has been reaped: Airflow 3.3's
# task supervisor can notice a deferring task's exit up to 5 s late, and when the trigger
# fires before that, the scheduler takes the stale "success" of the deferring attempt for the
# resumed attempt and fails it ("task-state-changed-externally").
EXECUTION_SECONDS = 5.0
RUN_DEADLINE_SECONDS = 150.0

DAG_SOURCE = f"""
import datetime

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG(
    "{DAG_ID}",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    default_args={{"retries": 0}},
):
    DuneRunPipelineOperator(task_id="{TASK_ID}", query_id=1001, deferrable=True, poll_interval=1)
"""


@pytest.fixture
def dune() -> Iterator[Any]:
    from airflow_provider_dune.emulator import DuneEmulator

    emulator = DuneEmulator(api_key=API_KEY, execution_seconds=EXECUTION_SECONDS).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def deployment(dune: Any) -> Iterator[AirflowDeployment]:
    with airflow_deployment({DAG_ID: DAG_SOURCE}, connections=dune.connection_env()) as deployment:
        yield deployment


def test_deferred_pipeline_task_through_real_scheduler_and_triggerer(
    dune: Any, deployment: AirflowDeployment
) -> None:
    with reported(dune, deployment):
        _run_and_check(dune, deployment)


def _run_and_check(dune: Any, deployment: AirflowDeployment) -> None:
    deployment.boot(DAG_ID)
    started = time.monotonic()  # the deadline is the run's: booting takes longer on a busy machine
    deployment.airflow("dags", "trigger", DAG_ID)

    # Poll the run to its end, noting what passes by: the deferred state and the trigger row
    # exist only while the task waits (the row is deleted once no task refers to it).
    task_states: list[str] = []
    trigger_rows: dict[int, tuple[str, str]] = {}
    run_state = None
    while time.monotonic() < started + RUN_DEADLINE_SECONDS:
        deployment.assert_running()
        for (state,) in deployment.query(
            "SELECT state FROM task_instance WHERE dag_id = :dag_id AND task_id = :task_id",
            dag_id=DAG_ID,
            task_id=TASK_ID,
        ):
            if state and (not task_states or task_states[-1] != state):
                task_states.append(str(state))
        for trigger_id, classpath, kwargs in deployment.query("SELECT id, classpath, kwargs FROM trigger"):
            trigger_rows[int(trigger_id)] = (str(classpath), str(kwargs))
        run_state = deployment.run_state(DAG_ID)
        if run_state in ("success", "failed"):
            break
        time.sleep(0.3)
    elapsed = time.monotonic() - started
    print(f"Airflow {AIRFLOW_VERSION}: run {run_state!r} after {elapsed:.1f}s; task states {task_states}")

    assert run_state == "success", f"run {run_state!r} after {elapsed:.0f}s; task states {task_states}"
    assert deployment.task_states(DAG_ID) == {TASK_ID: "success"}

    # The task deferred, and the triggerer re-created the provider's trigger from its row.
    assert "deferred" in task_states, f"never saw the task deferred: {task_states}"
    assert {classpath for classpath, _ in trigger_rows.values()} == {TRIGGER_CLASSPATH}, trigger_rows

    # Dune saw one pipeline start (resuming in execute_complete started no second one), and
    # the status polls that only the trigger makes until both nodes had finished.
    log = dune.request_log
    assert log.count(method="POST", path_prefix=EXECUTE_PIPELINE) == 1, log.entries()
    [pipeline_id] = dune.pipeline_execution_ids()
    pipeline = dune.pipeline_status(pipeline_id)
    assert pipeline["status"] == "completed", pipeline
    assert len(pipeline["node_executions"]) == 2, pipeline
    assert log.count(method="GET", path_prefix=pipeline_status(pipeline_id)) >= 2, log.entries()
    assert all(entry.status == 200 for entry in log.entries()), log.entries()
    assert log.count(key_in_url=True) == 0

    # execute_complete returned the pipeline id and handed the nodes downstream.
    xcoms = dict(
        deployment.query(
            "SELECT key, value FROM xcom WHERE dag_id = :dag_id AND task_id = :task_id",
            dag_id=DAG_ID,
            task_id=TASK_ID,
        )
    )
    assert pipeline_id in text(xcoms.get("return_value")), xcoms
    assert "node_executions" in xcoms, xcoms

    # The trigger row names the pipeline but holds no key, and nothing Airflow wrote does.
    from cryptography.fernet import Fernet

    fernet = Fernet(deployment.env["AIRFLOW__CORE__FERNET_KEY"].encode())
    for kwargs in (kwargs for _, kwargs in trigger_rows.values()):
        plain = kwargs if kwargs.startswith("{") else fernet.decrypt(kwargs.encode()).decode()
        assert pipeline_id in plain, plain
        assert API_KEY not in plain, f"the API key is in the trigger's kwargs: {plain}"
    files = deployment.log_files()
    assert any(path.name == "triggerer.log" for path in files)
    leaks = [
        str(path.relative_to(deployment.home)) for path in files if API_KEY.encode() in path.read_bytes()
    ]
    if API_KEY.encode() in deployment.database_dump():
        leaks.append("the metadata database")
    assert not leaks, f"the API key was written to {leaks}"
