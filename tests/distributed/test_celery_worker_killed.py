"""A Celery worker SIGKILLed while its task polls: the retry runs on the other worker and reconnects.

The worker DAG's one task runs a pipeline without deferring, so it polls inside the Celery
worker that took it. The test SIGKILLs that whole worker (the Celery main process, its pool
and the task's supervisor and process: a lost node), then checks that the scheduler fails the
try once its heartbeat is older than ``[scheduler] task_instance_heartbeat_timeout`` (20 s
here), the retry runs on the other worker, and it reconnects to the pipeline the first try
started (the resume record in the task state store) instead of starting another. The killed
worker is started again at the end, for the tests after this one.

About 1-2 minutes on two cores.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import psutil
import pytest

from harness.deployment import AIRFLOW_VERSION, AirflowDeployment, reported, wait_for
from tests.distributed import dags
from tests.e2e.dune_paths import EXECUTE_PIPELINE, pipeline_status

pytestmark = pytest.mark.distributed
STORE_KEY = "airflow_provider_dune.remote_run"


def _worker_running_task(deployment: AirflowDeployment) -> str | None:
    """The Celery worker whose process tree runs the task's code, by component name."""
    [(ti_id,)] = deployment.query(
        "SELECT id FROM task_instance WHERE dag_id = :dag_id", dag_id=dags.WORKER_DAG_ID
    )
    for name in deployment.workers:
        process = deployment.processes.get(name)
        if process is None:
            continue
        for child in psutil.Process(process.pid).children(recursive=True):
            try:
                if str(ti_id) in " ".join(child.cmdline()):
                    return name
            except psutil.Error:
                continue
    return None


def test_celery_worker_killed_retry_reconnects(worker_dune: Any, deployment: AirflowDeployment) -> None:
    with reported(worker_dune, deployment):
        victim = _run(worker_dune, deployment)
    deployment.start_worker(victim)  # the next tests expect both workers


def _run(dune: Any, deployment: AirflowDeployment) -> str:
    """Kill the worker running the task, check the retry; returns the killed worker's name."""
    started = time.monotonic()
    deployment.airflow("dags", "trigger", dags.WORKER_DAG_ID)

    def polling() -> bool:
        pipelines = dune.pipeline_execution_ids()
        return len(pipelines) == 1 and dune.request_log.count(path_prefix=pipeline_status(pipelines[0])) >= 2

    wait_for(deployment, "the task to start its pipeline and poll it twice", polling, timeout=180)
    [pipeline_id] = dune.pipeline_execution_ids()
    victim = _worker_running_task(deployment)
    assert victim is not None, "no Celery worker's process tree runs the task"
    survivor = next(name for name in deployment.workers if name != victim)
    status_at_kill = dune.pipeline_status(pipeline_id)["status"]
    assert deployment.kill(victim) == -signal.SIGKILL
    polls_at_kill = dune.request_log.count(path_prefix=pipeline_status(pipeline_id))

    run_state = deployment.wait_for_run(dags.WORKER_DAG_ID, timeout=240)
    rows = deployment.query(
        "SELECT state, try_number FROM task_instance WHERE dag_id = :dag_id", dag_id=dags.WORKER_DAG_ID
    )
    print(
        f"Airflow {AIRFLOW_VERSION}: killed {victim} (pipeline {status_at_kill}); run {run_state} "
        f"after {time.monotonic() - started:.0f}s; task instance {rows}"
    )
    assert status_at_kill not in ("completed", "failed", "cancelled"), status_at_kill
    assert run_state == "success", rows
    assert rows == [("success", 2)], rows

    # The retry ran on the surviving worker (the other is dead) and reconnected: one start.
    assert dune.request_log.count(method="POST", path_prefix=EXECUTE_PIPELINE) == 1
    assert dune.pipeline_execution_ids() == [pipeline_id]
    assert dune.pipeline_status(pipeline_id)["status"] == "completed"
    assert dune.request_log.count(path_prefix=pipeline_status(pipeline_id)) > polls_at_kill
    survivor_log = (deployment.log_dir / f"{survivor}.log").read_text(errors="replace")
    assert dags.WORKER_DAG_ID in survivor_log, f"{survivor} never ran the retry"
    reconnected = [line for line in deployment.logs_text().splitlines() if "Reconnecting to" in line]
    assert any("is still running" in line for line in reconnected), reconnected
    leftover = deployment.query("SELECT key FROM task_state_store WHERE key = :key", key=STORE_KEY)
    assert leftover == [], leftover
    return victim
