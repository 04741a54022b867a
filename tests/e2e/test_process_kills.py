"""Airflow processes killed mid-wait: the pipelines a task started are neither lost nor started twice.

Both tests start a real deployment (see :mod:`harness.deployment`) against the in-process
Dune emulator, and SIGKILL a process while pipelines run:

* the triggerer, while several deferred tasks wait in it: a new triggerer picks the
  triggers up from the ``trigger`` table and every task resumes, each with its one pipeline;
* the process running a non-deferrable task's code, while it polls: Airflow retries the
  task, and the retry reconnects to the running pipeline through the resume store (Airflow
  3.3+: the task state store; older versions: a Variable) instead of submitting another.

SIGKILL, not SIGTERM: nothing in the killed process gets to clean up (no ``on_kill``, no
cancelled pipeline), as when a node dies or the OOM killer strikes.

Each runs in about 55-75 s on a 2-core machine, on Airflow 2.11 and 3.x.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from harness.deployment import (
    AIRFLOW_3,
    AIRFLOW_VERSION,
    AirflowDeployment,
    airflow_deployment,
    reported,
    wait_for,
)
from tests.e2e.dune_paths import EXECUTE_PIPELINE, pipeline_status

API_KEY = "dune-e2e-kill-key-9d41c7a2b6e0"
TERMINAL = ("completed", "failed", "cancelled")
STORE_KEY = "airflow_provider_dune.remote_run"
# Where the operator records the run in flight (see airflow_provider_dune.operators.resume).
TASK_STATE_STORE = tuple(int(part) for part in AIRFLOW_VERSION.split(".")[:2]) >= (3, 3)

TRIGGERER_DAG_ID = "e2e_dune_triggerer_restart"
DEFERRED_TASKS = ("pipeline_a", "pipeline_b", "pipeline_c")
# Each pipeline has 2 query nodes: ~26 s from submit to the end. Airflow 2's
# SequentialExecutor starts the 3 tasks one after the other (~5 s each), so the first
# pipeline must still run once the last task has deferred and the triggerer is killed.
TRIGGERER_NODE_SECONDS = 13.0

WORKER_DAG_ID = "e2e_dune_worker_killed"
WORKER_TASK_ID = "refresh_top_projects"
WORKER_NODE_SECONDS = 12.0

TRIGGERER_DAG = f"""
import datetime

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG(
    "{TRIGGERER_DAG_ID}",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    default_args={{"retries": 0}},
):
    for task_id in {DEFERRED_TASKS!r}:
        # Query nodes only: the emulator's DuckDB refuses two refreshes of one view at once (a
        # catalog write-write conflict), which query 1001's lineage pipelines would start.
        DuneRunPipelineOperator(
            task_id=task_id,
            nodes=[
                {{"id": 1, "query_execution": {{"query_id": 1003}}}},
                {{"id": 2, "dependencies": [1], "query_execution": {{"query_id": 1001}}}},
            ],
            deferrable=True,
            poll_interval=1,
            # Defer at once: the worker's grace watch (defer_after, 5 s) would add 5 s per task
            # to Airflow 2's one-at-a-time start, and the first pipeline could end before the
            # last task deferred. The quick-deferral guard has its own tests.
            defer_after=0,
        )
"""

WORKER_DAG = f"""
import datetime

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG(
    "{WORKER_DAG_ID}",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
):
    DuneRunPipelineOperator(
        task_id="{WORKER_TASK_ID}",
        query_id=1001,
        deferrable=False,
        poll_interval=1,
        retries=1,
        retry_delay=datetime.timedelta(seconds=1),
    )
"""


def _emulator(execution_seconds: float) -> Iterator[Any]:
    from airflow_provider_dune.emulator import DuneEmulator

    emulator = DuneEmulator(api_key=API_KEY, execution_seconds=execution_seconds).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def slow_dune() -> Iterator[Any]:
    yield from _emulator(TRIGGERER_NODE_SECONDS)


@pytest.fixture
def worker_dune() -> Iterator[Any]:
    yield from _emulator(WORKER_NODE_SECONDS)


def _return_value(deployment: AirflowDeployment, dag_id: str, task_id: str) -> object:
    raw = deployment.xcom(dag_id, task_id)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _polls(dune: Any, pipeline_id: str) -> int:
    return int(dune.request_log.count(method="GET", path_prefix=pipeline_status(pipeline_id)))


# -- the triggerer dies while tasks wait in it ----------------------------------------------


def test_triggerer_killed_while_tasks_deferred(slow_dune: Any) -> None:
    # The new triggerer takes over the dead one's triggers once its heartbeat is older than
    # the health-check threshold (30 s by default): shorter, so the test need not wait that long.
    env = {
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
    }
    with (
        airflow_deployment(
            {TRIGGERER_DAG_ID: TRIGGERER_DAG}, connections=slow_dune.connection_env(), extra_env=env
        ) as deployment,
        reported(slow_dune, deployment),
    ):
        _kill_triggerer_and_check(slow_dune, deployment)


def _kill_triggerer_and_check(dune: Any, deployment: AirflowDeployment) -> None:
    deployment.boot(TRIGGERER_DAG_ID)
    started = time.monotonic()  # deadlines count from the trigger: booting is slower on a busy machine
    deployment.airflow("dags", "trigger", TRIGGERER_DAG_ID)

    def all_waiting_in_triggerer() -> bool:
        # Every task deferred, every trigger taken by the triggerer, and every pipeline polled
        # at least once (only a trigger polls: a task defers right after submitting).
        states = deployment.task_states(TRIGGERER_DAG_ID)
        if sorted(states) != sorted(DEFERRED_TASKS) or set(states.values()) != {"deferred"}:
            return False
        rows = deployment.query("SELECT triggerer_id FROM trigger")
        if len(rows) != len(DEFERRED_TASKS) or any(row[0] is None for row in rows):
            return False
        pipelines = dune.pipeline_execution_ids()
        return len(pipelines) == len(DEFERRED_TASKS) and all(_polls(dune, p) for p in pipelines)

    wait_for(deployment, "every task deferred and polled by the triggerer", all_waiting_in_triggerer, 90)
    pipelines = dune.pipeline_execution_ids()
    at_kill = {p: dune.pipeline_status(p)["status"] for p in pipelines}
    polls_at_kill = {p: _polls(dune, p) for p in pipelines}
    deferred_after = time.monotonic() - started

    returncode = deployment.kill("triggerer")
    assert returncode == -signal.SIGKILL, returncode
    time.sleep(3)
    # Nothing resumed the tasks while no triggerer ran.
    assert set(deployment.task_states(TRIGGERER_DAG_ID).values()) == {"deferred"}
    deployment.start("triggerer-2", "triggerer")

    run_state = deployment.wait_for_run(TRIGGERER_DAG_ID, started + 150 - time.monotonic())
    elapsed = time.monotonic() - started
    print(
        f"Airflow {AIRFLOW_VERSION}: all deferred after {deferred_after:.1f}s, pipelines at kill {at_kill}; "
        f"run {run_state!r} after {elapsed:.1f}s"
    )
    # The test killed the triggerer while the pipelines still ran (else it proves little).
    assert not any(status in TERMINAL for status in at_kill.values()), at_kill
    assert run_state == "success", (run_state, deployment.task_states(TRIGGERER_DAG_ID))
    assert deployment.task_states(TRIGGERER_DAG_ID) == dict.fromkeys(DEFERRED_TASKS, "success")

    # One pipeline per task: neither the deferral nor the resume after the restart started another.
    log = dune.request_log
    assert log.count(method="POST", path_prefix=EXECUTE_PIPELINE) == len(DEFERRED_TASKS), log.entries()
    assert sorted(dune.pipeline_execution_ids()) == sorted(pipelines)
    for pipeline_id in pipelines:
        status = dune.pipeline_status(pipeline_id)
        assert status["status"] == "completed", status
        assert len(status["node_executions"]) == 2, status
        # The new triggerer polled every pipeline again.
        assert _polls(dune, pipeline_id) > polls_at_kill[pipeline_id], (pipeline_id, polls_at_kill)
    assert all(entry.status == 200 for entry in log.entries()), log.entries()

    returned = {task_id: _return_value(deployment, TRIGGERER_DAG_ID, task_id) for task_id in DEFERRED_TASKS}
    assert sorted(map(str, returned.values())) == sorted(pipelines), returned


# -- the process running a task's code dies mid-wait --------------------------------------------


def test_worker_killed_mid_wait_retry_reconnects(worker_dune: Any) -> None:
    with (
        airflow_deployment(
            {WORKER_DAG_ID: WORKER_DAG}, connections=worker_dune.connection_env()
        ) as deployment,
        reported(worker_dune, deployment),
    ):
        _kill_worker_and_check(worker_dune, deployment)


def _task_process(deployment: AirflowDeployment) -> Any:
    """Processes running the task's code (one, really): descendants of the scheduler, by their title.

    Airflow 3: a LocalExecutor worker ("airflow worker -- LocalExecutor: <task instance id>")
    supervises the task and forks the process that runs its code ("airflow worker -- <task
    instance id>"). Airflow 2: the SequentialExecutor runs ``airflow tasks run --local``, whose
    task runner forks the raw task process ("airflow task runner: <dag> <task> <run> <job>").
    Killing the task process, not its supervisor, leaves Airflow to notice the crash as it would
    a real one.
    """
    import psutil

    if AIRFLOW_3:
        [(ti_id,)] = deployment.query(
            "SELECT id FROM task_instance WHERE dag_id = :dag_id AND task_id = :task_id",
            dag_id=WORKER_DAG_ID,
            task_id=WORKER_TASK_ID,
        )
        # SQLite holds the id as 32 hex digits; the title has the usual dashed form.
        title = f"airflow worker -- {uuid.UUID(str(ti_id))}"
    else:
        title = f"airflow task runner: {WORKER_DAG_ID} {WORKER_TASK_ID} "
    scheduler = psutil.Process(deployment.processes["scheduler"].pid)
    matches = []
    for process in scheduler.children(recursive=True):
        try:
            if " ".join(process.cmdline()).startswith(title):
                matches.append(process)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return matches


def _kill_worker_and_check(dune: Any, deployment: AirflowDeployment) -> None:
    import psutil

    deployment.boot(WORKER_DAG_ID)
    started = time.monotonic()  # deadlines count from the trigger: booting is slower on a busy machine
    deployment.airflow("dags", "trigger", WORKER_DAG_ID)

    def submitted_and_polled() -> bool:
        pipelines = dune.pipeline_execution_ids()
        return len(pipelines) == 1 and _polls(dune, pipelines[0]) >= 2

    wait_for(deployment, "the task to submit its pipeline and poll it twice", submitted_and_polled, 90)
    [pipeline_id] = dune.pipeline_execution_ids()
    matches = _task_process(deployment)
    if len(matches) != 1:
        tree = psutil.Process(deployment.processes["scheduler"].pid).children(recursive=True)
        raise AssertionError(
            f"expected one task process, found {len(matches)} among the scheduler's descendants: "
            + "; ".join(f"{p.pid} (parent {p.ppid()}) {' '.join(p.cmdline())!r}" for p in tree)
        )
    [task_process] = matches
    assert task_process.pid != deployment.processes["scheduler"].pid
    parent = task_process.parent()
    described = (
        f"{task_process.pid} {' '.join(task_process.cmdline()).strip()!r}, "
        f"child of {parent.pid if parent else None} {' '.join(parent.cmdline()) if parent else ''!r}"
    )
    status_at_kill = dune.pipeline_status(pipeline_id)["status"]
    os.kill(task_process.pid, signal.SIGKILL)
    psutil.wait_procs([task_process], timeout=10)
    killed_after = time.monotonic() - started
    polls_at_kill = _polls(dune, pipeline_id)

    run_state = deployment.wait_for_run(WORKER_DAG_ID, started + 150 - time.monotonic())
    elapsed = time.monotonic() - started
    ti_rows = deployment.query(
        "SELECT state, try_number FROM task_instance WHERE dag_id = :dag_id AND task_id = :task_id",
        dag_id=WORKER_DAG_ID,
        task_id=WORKER_TASK_ID,
    )
    print(
        f"Airflow {AIRFLOW_VERSION}: killed task process {described} after {killed_after:.1f}s "
        f"(pipeline {status_at_kill}); run {run_state!r} after {elapsed:.1f}s; task instance {ti_rows}"
    )
    assert status_at_kill not in TERMINAL, status_at_kill
    assert run_state == "success", (run_state, ti_rows)
    assert ti_rows == [("success", 2)], ti_rows

    # The retry reconnected to the pipeline the killed try had started: Dune saw one POST.
    log = dune.request_log
    assert log.count(method="POST", path_prefix=EXECUTE_PIPELINE) == 1, log.entries()
    assert dune.pipeline_execution_ids() == [pipeline_id]
    status = dune.pipeline_status(pipeline_id)
    assert status["status"] == "completed", status
    assert _polls(dune, pipeline_id) > polls_at_kill
    # The retry found the pipeline still running (a finished one would also be reused).
    reconnected = [line for line in deployment.logs_text().splitlines() if "Reconnecting to" in line]
    assert any("is still running" in line for line in reconnected), reconnected
    assert _return_value(deployment, WORKER_DAG_ID, WORKER_TASK_ID) == pipeline_id

    # The wait ended, so the record of the in-flight run is gone.
    if TASK_STATE_STORE:
        leftover = deployment.query("SELECT key, value FROM task_state_store WHERE key = :key", key=STORE_KEY)
    else:
        leftover = deployment.query("SELECT key, val FROM variable WHERE key LIKE :key", key=f"{STORE_KEY}.%")
    assert leftover == [], leftover
