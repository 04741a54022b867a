"""What the quick-deferral guard costs in latency per task, on real Airflow 3 processes (issue 13).

Airflow 3's scheduler can fail a deferred task whose trigger fires within seconds of deferring
(apache/airflow #66374, #67287, #71580, #72716; see ``docs/reliability.md``). The provider
guards against it twice (``airflow_provider_dune/operators/deferral.py``): the worker watches
the run for ``defer_after`` seconds (5 by default) before deferring, and the trigger holds its
end event until ``[dune] deferral_event_hold`` seconds (10 by default) after the deferral
moment. Both trade latency for safety; this benchmark measures how much.

Method. An emulator process (:class:`benchmarks.common.EmulatorProcess`) serves a catalog of
single-node pipelines of fixed lengths: about 1 s (ends within ``defer_after``: the guarded
task never defers), about 6 s (ends a second after the guarded task defers: inside the hold)
and about 20 s (ends after the hold: the guard should cost nothing). Two throwaway Airflow 3
deployments (:func:`harness.deployment.airflow_deployment`: scheduler, DAG processor, API
server, triggerer, LocalExecutor with parallelism 8), one after the other, each run one DAG
per length, one length at a time, of N mapped ``DuneRunPipelineOperator(deferrable=True,
poll_interval=1)`` tasks:

* **guard off** (the baseline, first): ``defer_after=0`` in the DAG and
  ``AIRFLOW__DUNE__DEFERRAL_EVENT_HOLD=0`` in every process, so each task defers after one
  status read and its trigger fires as soon as it sees the end;
* **guard on**: the provider's defaults.

A task's latency is its task instance's ``end_date`` (metadata database) minus the moment its
pipeline ended on the emulator (the node execution's ``execution_ended_at``; the pipeline id
comes from the task's ``pipeline_execution_id`` XCom). Queueing before the submission is not
counted; the trip back from the triggerer to a worker slot is. Failed task instances are
counted, not timed: with the guard off, some may be lost to the scheduler's race (information
about the baseline, not a miss). Tasks that deferred are those that left a trigger log.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.common import API_KEY, BenchResult, EmulatorProcess, Figure
from harness.deployment import AIRFLOW_3, AIRFLOW_VERSION, AirflowDeployment, airflow_deployment

NAME = "quick-deferrals"
DURATIONS = (1.0, 6.0, 20.0)  # seconds each pipeline runs on the emulator
FIRST_QUERY = 5000
POLL_INTERVAL = 1.0
PARALLELISM = 8
# The 20 s pipelines end after the hold: the guard may add at most this much to their median.
LONG_RUN_BOUND = 1.5
CATALOG = {
    "queries": [
        {"id": FIRST_QUERY + i, "name": f"{s:g} s", "sql": "SELECT 1 AS n", "execution_seconds": s}
        for i, s in enumerate(DURATIONS)
    ]
}
DAG = """
import datetime

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
    DuneRunPipelineOperator.partial(
        task_id="run", deferrable=True, poll_interval={poll_interval}{extra}
    ).expand(query_id=[{query_id}] * {tasks})
"""
TASKS_SQL = """
SELECT ti.map_index, ti.state, ti.end_date, x.value
FROM task_instance ti
LEFT JOIN xcom x ON x.dag_id = ti.dag_id AND x.run_id = ti.run_id AND x.task_id = ti.task_id
    AND x.map_index = ti.map_index AND x.key = 'pipeline_execution_id'
WHERE ti.dag_id = :dag_id
"""


def dag_id(seconds: float) -> str:
    return f"bench_quick_{seconds:g}s"


def dag_files(tasks: int, guarded: bool) -> dict[str, str]:
    extra = "" if guarded else ", defer_after=0"
    return {
        dag_id(seconds): DAG.format(
            dag_id=dag_id(seconds),
            poll_interval=POLL_INTERVAL,
            extra=extra,
            query_id=FIRST_QUERY + i,
            tasks=tasks,
        )
        for i, seconds in enumerate(DURATIONS)
    }


def _epoch(stamp: Any) -> float:
    """A timestamp from the API (ISO, ``Z``) or the metadata database (naive UTC in SQLite)."""
    if not isinstance(stamp, datetime):
        stamp = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


def pipeline_ended(session: Any, base_url: str, pipeline_id: str) -> float:
    """When the pipeline's (single) node execution ended on the emulator, in epoch seconds."""

    def get(path: str) -> Any:
        response = session.get(f"{base_url}{path}", headers={"X-Dune-Api-Key": API_KEY}, timeout=30)
        response.raise_for_status()
        return response.json()

    (node,) = get(f"/v1/pipelines/executions/{pipeline_id}/status")["node_executions"]
    execution_id = node["query_execution_status"]["execution_id"]
    return _epoch(get(f"/v1/execution/{execution_id}/status")["execution_ended_at"])


def run_configuration(emulator: EmulatorProcess, tasks: int, guarded: bool) -> dict[str, Any]:
    """Boot a deployment and run each length's DAG in turn."""
    env = {"AIRFLOW__CORE__PARALLELISM": str(PARALLELISM)}
    if not guarded:
        env["AIRFLOW__DUNE__DEFERRAL_EVENT_HOLD"] = "0"
    dags = dag_files(tasks, guarded)
    connections = {"AIRFLOW_CONN_DUNE_DEFAULT": emulator.conn_json()}
    measured: dict[str, Any] = {}
    with airflow_deployment(dags, connections=connections, extra_env=env) as deployment:
        started = time.monotonic()
        deployment.boot(*dags)
        measured["boot_seconds"] = round(time.monotonic() - started, 1)
        for seconds in DURATIONS:
            measured[f"{seconds:g}"] = run_dag(deployment, emulator, dag_id(seconds), tasks)
        deployment.passed = True
    return measured


def run_dag(deployment: AirflowDeployment, emulator: EmulatorProcess, dag: str, tasks: int) -> dict[str, Any]:
    """Trigger the DAG and wait for its run; each successful task's latency, the failed ones' indexes."""
    import requests

    started = time.monotonic()
    deployment.airflow("dags", "trigger", dag)
    state = deployment.wait_for_run(dag, timeout=300 + 15 * tasks)
    if state not in ("success", "failed"):
        raise RuntimeError(f"the run of {dag} did not end within the timeout (state {state})")
    seconds = time.monotonic() - started
    rows = deployment.query(TASKS_SQL, dag_id=dag)
    if len(rows) != tasks:
        raise RuntimeError(f"{dag}: {len(rows)} task instances, expected {tasks}")
    latencies, failed = [], []
    with requests.Session() as session:
        for map_index, ti_state, end_date, pipeline in rows:
            if ti_state != "success":
                failed.append(int(map_index))
                continue
            ended = pipeline_ended(session, emulator.base_url, json.loads(pipeline))
            latencies.append(round(_epoch(end_date) - ended, 3))
    return {
        "run_state": state,
        "seconds": round(seconds, 1),
        "tasks": tasks,
        "latencies": sorted(latencies),
        "failed": sorted(failed),
        "deferred": len(deployment.deferred_map_indexes(dag)),
    }


def summary(record: dict[str, Any]) -> dict[str, Any]:
    latencies = record["latencies"]
    return {
        "median": statistics.median(latencies) if latencies else float("nan"),
        "max": max(latencies) if latencies else float("nan"),
        "timed": len(latencies),
        "failed": len(record["failed"]),
        "deferred": record["deferred"],
    }


def run(tasks: int = 20, command: str = "") -> BenchResult:
    from airflow_provider_dune.operators.deferral import DEFAULT_DEFER_AFTER, DEFAULT_EVENT_HOLD

    result = BenchResult(NAME)
    if not AIRFLOW_3:
        result.skipped = (
            f"needs Airflow 3 (this is {AIRFLOW_VERSION}): the race is Airflow 3's, and Airflow 2's "
            "SQLite deployment runs one task at a time"
        )
        return result
    measured: dict[str, Any] = {"tasks": tasks}
    with tempfile.TemporaryDirectory() as folder:
        catalog = Path(folder) / "catalog.yaml"
        catalog.write_text(json.dumps(CATALOG))  # JSON is YAML
        with EmulatorProcess(execution_seconds=1.0, extra_args=("--catalog", str(catalog))) as emulator:
            try:
                for name, guarded in (("off", False), ("on", True)):
                    measured[name] = run_configuration(emulator, tasks, guarded)
            except Exception as exc:
                result.skipped = f"{type(exc).__name__}: {exc}"
                result.details = measured
                return result
    result.details = measured
    result.figures = figures(measured, tasks, DEFAULT_DEFER_AFTER, DEFAULT_EVENT_HOLD, command)
    return result


def figures(
    measured: dict[str, Any], tasks: int, defer_after: float, hold: float, command: str
) -> list[Figure]:
    on = {seconds: summary(measured["on"][f"{seconds:g}"]) for seconds in DURATIONS}
    off = {seconds: summary(measured["off"][f"{seconds:g}"]) for seconds in DURATIONS}
    setup = (
        f"{tasks} mapped DuneRunPipelineOperator(deferrable=True, poll_interval={POLL_INTERVAL:g}) per "
        f"length, Airflow 3 LocalExecutor (parallelism {PARALLELISM}) and triggerer; guard on: "
        f"defer_after={defer_after:g}, deferral_event_hold={hold:g}; off: both 0"
    )
    failed_on = sum(s["failed"] for s in on.values())
    failed_off = sum(s["failed"] for s in off.values())
    out = [
        Figure(
            benchmark=NAME,
            name="failed tasks, guard on",
            value=failed_on,
            unit=f"of {len(DURATIONS) * tasks}",
            target="0",
            passed=failed_on == 0,
            baseline="guard off",
            baseline_value=failed_off,
            command=command,
            notes=f"{setup}. Failed per length, on / off: "
            + ", ".join(f"{s:g} s {on[s]['failed']} / {off[s]['failed']}" for s in DURATIONS),
        )
    ]
    targets = {
        # Ends in the worker's short wait: no trip through the triggerer and back.
        1.0: ("< 0 s (no triggerer round trip)", lambda added: added < 0),
        # Ends a second after deferring: the hold is what it costs, and no more.
        6.0: (
            f"≤ {hold + 2 * POLL_INTERVAL:g} s (the hold + 2 poll intervals)",
            lambda added: added <= hold + 2 * POLL_INTERVAL,
        ),
        # Ends after the hold: the guard should cost nothing.
        20.0: (f"≤ {LONG_RUN_BOUND:g} s", lambda added: added <= LONG_RUN_BOUND),
    }
    for seconds in DURATIONS:
        target, check = targets[seconds]
        added = on[seconds]["median"] - off[seconds]["median"]
        out.append(
            Figure(
                benchmark=NAME,
                name=f"added latency per task, {seconds:g} s pipelines (median on - median off)",
                value=round(added, 2),
                unit="s",
                target=target,
                passed=check(added),
                baseline="guard off: median latency from pipeline end to task end",
                baseline_value=round(off[seconds]["median"], 2),
                ratio=round(on[seconds]["median"] / off[seconds]["median"], 2),
                command=command,
                notes=(
                    f"guard on: median {on[seconds]['median']:.2f} s, max {on[seconds]['max']:.2f} s, "
                    f"{on[seconds]['deferred']} of {tasks} deferred; guard off: median "
                    f"{off[seconds]['median']:.2f} s, max {off[seconds]['max']:.2f} s, "
                    f"{off[seconds]['deferred']} of {tasks} deferred, {off[seconds]['failed']} failed "
                    f"(timed: the {on[seconds]['timed']} / {off[seconds]['timed']} that succeeded)"
                ),
            )
        )
    return out
