"""Per-poll CPU of the provider's trigger in a real ``airflow triggerer`` process.

:mod:`benchmarks.trigger_scale` runs N ``DunePipelineTrigger.run()`` in one bare event loop.
This benchmark checks that the same triggers cost about the same inside a real deployment:

1. An emulator process starts N pipelines whose executions outlast the run, so every trigger
   keeps polling.
2. A throwaway SQLite Airflow home (:func:`harness.deployment.airflow_deployment`) gets one
   DAG: ``DunePipelineSensor(deferrable=True, poke_interval=1)`` mapped over the N pipeline
   ids. The scheduler (LocalExecutor), DAG processor, execution API server and triggerer run
   as separate processes. A second DAG in the same file defers one task onto
   :class:`benchmarks.lag_probe.LagProbeTrigger` (the deployment's ``PYTHONPATH`` holds the
   checkout): a 10 ms heartbeat in the triggerer's own event loop that appends, once a second,
   how late its wake-ups were (and every full garbage collection) to a file. It runs before the
   idle triggerer's CPU is measured (its fixed cost: DB queries, heartbeats, the runner's 1 s
   sync loop, and the probe), so the probe counts as fixed cost, as the in-process worker's
   own heartbeat does.
3. The run is triggered; each task pokes once, defers, and the triggerer picks the N triggers
   up. Once every task is deferred and every pipeline is being polled, and after a warm-up,
   a window of W seconds is measured: the CPU (user + system) of the triggerer process and
   its children (the forked trigger runner that holds the event loop, and the log server),
   with psutil, and the status GETs the emulator answered for those pipelines in that window
   (its request log). Per-poll CPU = CPU / polls; the runner alone is reported too.
   The probe's seconds inside the window give the event-loop lag: max, p99, beats later
   than 100 ms, and the worst stalls.
4. Frozen variant (``frozen_seconds``): the triggerer is stopped gracefully (its job ends, so
   a new one takes the triggers over at once) and restarted with ``airflow_local_settings.py``
   in ``$AIRFLOW_HOME/config`` (:data:`LOCAL_SETTINGS`, the recipe in ``docs/triggers.md``).
   ``import airflow`` (``settings.initialize()``) imports it in every Airflow process; when
   ``sys.argv[1:2] == ["triggerer"]`` it registers ``gc.collect(); gc.freeze()`` to run just
   before the triggerer forks its trigger runner. Freezing at import time would be too early
   (about a third of the runner's heap exists then); just before the fork, everything the
   triggerer loaded is frozen and the runner's full collections walk only what its triggers
   hold. The probe records the runner's ``gc.get_freeze_count()`` to show it. The same warm-up and a window of
   ``frozen_seconds`` give its lag and its CPU per poll (fixed cost out: the as-is idle
   triggerer's, as the frozen one is never measured idle).
5. Baseline, same run: the triggerer is stopped (the other Airflow processes stay up, so the
   machine is as busy as before) and ``benchmarks.loop_worker triggers`` runs the same N
   triggers in one process against the same emulator, with the same warm-up and window.
   The same worker then runs with no pipelines, to price its own probes (a 10 ms heartbeat
   and a once-a-second psutil sampler).

Both sides carry a fixed cost per second that is not polling: the triggerer's DB loop, log
server and 1 s housekeeping, and the worker's probes. The headline divides all CPU by the
polls; a second figure takes each side's fixed cost out (idle triggerer, empty worker) to
compare what one more poll costs. How bunched the polls arrive is reported too: the
triggerer starts the triggers it picks up in one pass of its loop together, and polls that
fall due together cost fewer event-loop wake-ups each.

``python -m benchmarks.real_triggerer --tasks 30 --seconds 20 --frozen-seconds 15 --profile``
runs it standalone (``--frozen-seconds`` defaults to ``--seconds``; 0 skips the variant);
``--profile`` then also profiles (cProfile, CPU clock) both sides for a further window after
the measured one (:mod:`benchmarks.profiled`), and prints where the CPU goes, per poll, by
package. Profiled windows are never used for the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import (
    API_KEY,
    PYTHON,
    BenchResult,
    EmulatorProcess,
    run_worker,
    submit_pipelines,
)
from benchmarks.profiled import print_profile, summarize_profile, wait_for_file
from benchmarks.real_triggerer_figures import INTERVAL, NAME, figures, lag_figures
from harness.deployment import AirflowDeployment, airflow_deployment, wait_for
from harness.processes import cpu_seconds, rss_mb, tree_cpu_seconds, triggerer_tree

ROOT = Path(__file__).resolve().parent.parent

DAG_ID = "bench_real_triggerer"
TASK_ID = "wait_for_pipeline"
PROBE_DAG_ID = "bench_lag_probe"
PROBE_CLASSPATH = "benchmarks.lag_probe.LagProbeTrigger"  # not imported here: it imports Airflow

PARALLELISM = 8  # task processes at once; more only queue for the 2 cores of a small machine
DAG_SOURCE = """
import datetime

from airflow_provider_dune.sensors.dune import DunePipelineSensor
from benchmarks.lag_probe import LagProbeOperator

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

PIPELINE_IDS = {ids}

with DAG(
    "{dag_id}",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks={n},
    default_args={{"retries": 0}},
):
    DunePipelineSensor.partial(
        task_id="{task_id}", deferrable=True, poke_interval={interval}, timeout=86400
    ).expand(pipeline_execution_id=PIPELINE_IDS)

# The event-loop lag probe: its own DAG, deferred before the idle triggerer is measured, so
# that its 10 ms heartbeat is part of the triggerer's fixed cost (as the in-process worker's is).
with DAG(
    "{probe_dag_id}",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    default_args={{"retries": 0}},
):
    LagProbeOperator(task_id="lag_probe", out_path={probe_path!r})
"""
# The deployment recipe measured by the frozen variant. `$AIRFLOW_HOME/config` is on sys.path
# when `import airflow` runs settings.initialize(), which imports this module in every Airflow
# process; it acts only in `airflow triggerer`. Freezing right there would leave most of the
# heap out (~100k objects exist then, ~270k by the time the triggerer forks its trigger
# runner), so it freezes in the triggerer just before each os.fork(): the runner inherits the
# frozen generation (and the supervisor keeps it too).
LOCAL_SETTINGS = """\
import gc
import os
import sys

if sys.argv[1:2] == ["triggerer"]:

    def _freeze_before_fork():
        gc.collect()
        gc.freeze()

    os.register_at_fork(before=_freeze_before_fork)
"""


class DeploymentFailed(RuntimeError):
    pass


# ------------------------------------------------------------------ the deployment


def dag_source(ids: list[str], probe_path: str) -> str:
    return DAG_SOURCE.format(
        ids=json.dumps(ids),
        dag_id=DAG_ID,
        task_id=TASK_ID,
        n=len(ids),
        interval=INTERVAL,
        probe_dag_id=PROBE_DAG_ID,
        probe_path=probe_path,
    )


def launcher(profile_prefix: str | None) -> tuple[str, ...]:
    """How the triggerer is started: plain ``airflow``, or under :mod:`benchmarks.profiled`."""
    if profile_prefix is None:
        return ("-m", "airflow")
    return ("-m", "benchmarks.profiled", profile_prefix, "airflow")


def boot(deployment: AirflowDeployment, profile_prefix: str | None) -> None:
    """Start every component, DAGs left paused (the probe runs first), wait for the trigger runner."""
    deployment.boot(DAG_ID, unpause=False, triggerer_launcher=launcher(profile_prefix))
    wait_for_runner(deployment)


def wait_for_runner(deployment: AirflowDeployment) -> None:
    """Until the triggerer has forked its trigger runner (its job row runs already)."""
    wait_for(
        deployment,
        "the triggerer's trigger runner",
        lambda: "runner" in triggerer_tree(deployment.processes["triggerer"].pid),
        timeout=120,
    )


def start_probe(deployment: AirflowDeployment, probe_path: str, timeout: float = 180) -> None:
    """Trigger the lag probe's DAG; wait until the probe writes from the triggerer's event loop."""
    started = time.time()
    deployment.airflow("dags", "trigger", PROBE_DAG_ID)
    wait_for(
        deployment,
        "the lag probe to run in the triggerer",
        lambda: any(not r.get("start") and r["t"] > started for r in probe_records(probe_path)),
        timeout=timeout,
    )


def restart_triggerer(deployment: AirflowDeployment, n: int, local_settings: str | None) -> int:
    """Stop the triggerer gracefully, optionally add ``airflow_local_settings.py``, start a new one.

    A graceful stop ends the old triggerer's job, so the new one takes every trigger over at
    once. Returns the new job id once it runs all N triggers and the probe.
    """
    deployment.kill("triggerer", grace=60)
    if local_settings is not None:
        config = deployment.home / "config"
        config.mkdir(exist_ok=True)
        (config / "airflow_local_settings.py").write_text(local_settings)
    job = deployment.start_triggerer("triggerer")
    wait_for_runner(deployment)
    deadline = time.monotonic() + 180
    while True:
        deployment.assert_running()
        rows = deployment.query("SELECT count(*) FROM trigger WHERE triggerer_id = :job", job=job)
        taken = int(rows[0][0]) if rows else 0
        if taken == n + 1:  # the N sensors' triggers and the probe
            return job
        if time.monotonic() > deadline:
            raise DeploymentFailed(f"the new triggerer took {taken}/{n + 1} triggers in 180 s")
        time.sleep(1.0)


def counts(deployment: AirflowDeployment) -> tuple[Counter[str], int]:
    states = Counter(
        str(state)
        for (state,) in deployment.query(
            "SELECT state FROM task_instance WHERE dag_id = :dag_id", dag_id=DAG_ID
        )
    )
    assigned = deployment.query(
        "SELECT count(*) FROM trigger WHERE triggerer_id IS NOT NULL AND classpath != :probe",
        probe=PROBE_CLASSPATH,
    )
    return states, int(assigned[0][0]) if assigned else 0


def wait_until_deferred(deployment: AirflowDeployment, n: int, timeout: float) -> float:
    """Until all N tasks are deferred and their triggers assigned; returns the seconds it took."""
    started = time.monotonic()
    while True:
        deployment.assert_running()
        states, assigned = counts(deployment)
        if states.get("deferred", 0) == n and assigned == n:
            return time.monotonic() - started
        ended = {s: c for s, c in states.items() if s in ("failed", "success", "upstream_failed", "skipped")}
        if ended:
            raise DeploymentFailed(f"tasks ended instead of deferring: {dict(states)}")
        if time.monotonic() - started > timeout:
            raise DeploymentFailed(
                f"after {timeout:.0f} s only {states.get('deferred', 0)}/{n} tasks deferred and "
                f"{assigned} triggers assigned; task states {dict(states)}"
            )
        time.sleep(1.0)


def status_paths(ids: list[str]) -> set[str]:
    return {f"/api/v1/pipelines/executions/{pipeline_id}/status" for pipeline_id in ids}


def wait_until_polled(
    emulator: EmulatorProcess, deployment: AirflowDeployment, ids: list[str], timeout: float
) -> None:
    """Until every pipeline got a status GET within 3 s: the runner has started every trigger.

    Every task has deferred by now, so no sensor poke is among these GETs.
    """
    paths = status_paths(ids)
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        deployment.assert_running()
        emulator.clear_log()
        time.sleep(3.0)
        seen = {e["path"] for e in emulator.requests_log() if e["method"] == "GET" and e["path"] in paths}
        if len(seen) == len(paths):
            return
    raise DeploymentFailed(f"only {len(seen)}/{len(paths)} pipelines polled {timeout:.0f} s after deferral")


def polls_between(
    emulator: EmulatorProcess, ids: list[str], start: float, end: float
) -> tuple[int, Counter[int | None], list[float]]:
    """Status GETs for these pipelines the emulator answered in ``[start, end)`` (epoch seconds)."""
    paths = status_paths(ids)
    entries = [
        entry
        for entry in emulator.requests_log()
        if entry["method"] == "GET" and entry["path"] in paths and start <= entry["time"] < end
    ]
    statuses: Counter[int | None] = Counter(entry["status"] for entry in entries)
    return statuses.get(200, 0), statuses, sorted(entry["time"] for entry in entries)


def mean_burst(times: list[float], gap: float = 0.002) -> float:
    """Polls per burst, a burst being polls answered less than ``gap`` apart.

    Triggers whose polls fall due together are served in fewer event-loop wake-ups (and
    syscalls) per poll, so how bunched the polls are bears on the CPU each one costs.
    """
    if not times:
        return 0.0
    bursts = 1 + sum(1 for before, after in itertools.pairwise(times) if after - before >= gap)
    return len(times) / bursts


# ------------------------------------------------------------------ the lag probe (lag_probe.py)


def probe_records(path: str) -> list[dict[str, Any]]:
    try:
        with open(path) as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written
            continue
    return out


def lag_summary(lines: Iterable[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """The lag of the seconds written in ``[start + 1, end]`` (whole seconds inside the window)."""
    seconds = [r for r in lines if not r.get("start") and start + 1.0 <= r["t"] <= end]
    hist: Counter[float] = Counter()
    for record in seconds:
        for ms, count in record["hist"].items():
            hist[float(ms)] += count
    beats = sum(hist.values())
    p99 = 0.0
    if beats:
        rank, seen = 0.99 * beats, 0
        for ms in sorted(hist):
            seen += hist[ms]
            if seen >= rank:
                p99 = ms
                break
    stalls = [(round(at - start, 2), ms) for r in seconds for at, ms in r["stalls"]]
    full = [(round(at - start, 2), ms) for r in seconds for at, ms in r["gc2"]]
    return {
        "seconds_covered": len(seconds),
        "beats": beats,
        "max_ms": max((r["max_ms"] for r in seconds), default=None),
        "p99_ms": p99,
        "over_100ms": sum(1 for _, ms in stalls if ms > 100),
        "worst_stalls": sorted(stalls, key=lambda stall: -stall[1])[:5],
        "full_collections": len(full),
        "full_collection_max_ms": max((ms for _, ms in full), default=None),
        "full_collections_worst": sorted(full, key=lambda c: -c[1])[:5],
        "pids": sorted({r["pid"] for r in seconds}),
    }


# ------------------------------------------------------------------ the measurement


def measure_idle(deployment: AirflowDeployment, seconds: float) -> dict[str, float]:
    tree = triggerer_tree(deployment.processes["triggerer"].pid)
    cpu0, wall0 = cpu_seconds(tree), time.monotonic()
    time.sleep(seconds)
    cpu1, wall1 = cpu_seconds(tree), time.monotonic()
    elapsed = wall1 - wall0
    return {role: (cpu1[role] - cpu0[role]) / elapsed for role in cpu1 if role in cpu0}


def measure_window(
    emulator: EmulatorProcess, deployment: AirflowDeployment, ids: list[str], seconds: float
) -> dict[str, Any]:
    triggerer = deployment.processes["triggerer"]
    tree = triggerer_tree(triggerer.pid)
    others = {name: p.pid for name, p in deployment.processes.items() if name != "triggerer"}
    emulator.clear_log()
    rss0 = rss_mb(tree)
    others0 = {name: tree_cpu_seconds(pid) for name, pid in others.items()}
    emulator0 = emulator.cpu_seconds()
    cpu0, wall0, epoch0 = cpu_seconds(tree), time.monotonic(), time.time()
    # Sample the RSS through the window: the reference point, as in trigger-scale, is halfway.
    rss_samples: list[tuple[float, float]] = []
    while (now := time.monotonic()) < wall0 + seconds:
        rss_samples.append((now - wall0, sum(rss_mb(tree).values())))
        time.sleep(min(5.0, wall0 + seconds - now))
    cpu1, wall1, epoch1 = cpu_seconds(tree), time.monotonic(), time.time()
    emulator1 = emulator.cpu_seconds()
    others1 = {name: tree_cpu_seconds(pid) for name, pid in others.items()}
    rss1 = rss_mb(tree)
    deployment.assert_running()
    polls, statuses, times = polls_between(emulator, ids, epoch0, epoch1)
    cpu = {role: cpu1[role] - cpu0[role] for role in cpu1 if role in cpu0}
    elapsed = wall1 - wall0
    reference_at = min(60.0, seconds / 2)
    reference = next((mb for at, mb in rss_samples if at >= reference_at), sum(rss0.values()))
    return {
        "window_seconds": elapsed,
        "window_epochs": (epoch0, epoch1),
        "polls": polls,
        "responses": {str(status): count for status, count in statuses.items()},
        "mean_burst": mean_burst(times),
        "cpu_seconds": cpu,
        "cpu_total": sum(cpu.values()),
        "cpu_us_per_poll": sum(cpu.values()) / polls * 1e6 if polls else None,
        "runner_us_per_poll": cpu.get("runner", 0.0) / polls * 1e6 if polls else None,
        "rss_start_mb": rss0,
        "rss_end_mb": rss1,
        "rss_reference_at_s": reference_at,
        "rss_reference_mb": reference,
        "other_components_cpu_cores": {
            name: (others1[name] - others0[name]) / elapsed for name in others if name in others1
        },
        "emulator_cpu_cores": (emulator1 - emulator0) / elapsed,
        "processes": {role: process.pid for role, process in tree.items()},
    }


def baseline_args(emulator: EmulatorProcess, ids_file: str, warmup: float, seconds: float) -> list[str]:
    from airflow_provider_dune.hooks.dune import ASYNC_POOL_SIZE

    return [
        "triggers",
        *("--base-url", emulator.base_url, "--port", str(emulator.port), "--api-key", API_KEY),
        *("--server-pid", str(emulator.pid), "--ids-file", ids_file),
        *("--interval", str(INTERVAL), "--warmup", str(warmup), "--seconds", str(seconds)),
        *("--pool", str(ASYNC_POOL_SIZE)),
    ]


# ------------------------------------------------------------------ profiling (--profile only)


def profile_triggerer(
    emulator: EmulatorProcess, deployment: AirflowDeployment, ids: list[str], prefix: str, seconds: float
) -> dict[str, Any]:
    tree = triggerer_tree(deployment.processes["triggerer"].pid)
    targets = {role: tree[role] for role in ("supervisor", "runner") if role in tree}
    emulator.clear_log()
    epoch0 = time.time()
    for process in targets.values():
        process.send_signal(signal.SIGUSR1)
    time.sleep(seconds)
    for process in targets.values():
        process.send_signal(signal.SIGUSR1)
    epoch1 = time.time()
    polls, _, _ = polls_between(emulator, ids, epoch0, epoch1)
    out = {}
    for role, process in targets.items():
        path = Path(f"{prefix}.{process.pid}.prof")
        wait_for_file(path)
        out[role] = (
            summarize_profile(path, polls, epoch1 - epoch0) if path.exists() else {"error": f"no {path}"}
        )
    return out


def profile_baseline(
    emulator: EmulatorProcess, ids: list[str], ids_file: str, prefix: str, warmup: float, seconds: float
) -> dict[str, Any]:
    """The in-process loop under the same profiler, for a window after its own warm-up."""
    paths = status_paths(ids)
    emulator.clear_log()
    worker = subprocess.Popen(
        [
            PYTHON,
            *("-m", "benchmarks.profiled", prefix, "benchmarks.loop_worker"),
            *baseline_args(emulator, ids_file, warmup, seconds + 30),
        ],
        cwd=ROOT,
        env={**os.environ, "AIRFLOW_CONN_DUNE_DEFAULT": emulator.conn_json()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if sum(1 for e in emulator.requests_log() if e["path"] in paths) >= len(ids):
                break
        time.sleep(warmup)
        emulator.clear_log()
        epoch0 = time.time()
        worker.send_signal(signal.SIGUSR1)
        time.sleep(seconds)
        worker.send_signal(signal.SIGUSR1)
        epoch1 = time.time()
        path = Path(f"{prefix}.{worker.pid}.prof")
        wait_for_file(path)
        polls, _, _ = polls_between(emulator, ids, epoch0, epoch1)
        if not path.exists():
            return {"error": f"no {path}"}
        return summarize_profile(path, polls, epoch1 - epoch0)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


# ------------------------------------------------------------------ the run


@contextlib.contextmanager
def deployment_for(emulator: EmulatorProcess, ids: list[str], probe_path: str) -> Iterator[AirflowDeployment]:
    extra_env = {
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(len(ids)),
        # The DAG processor, the probe's task and the triggerer import benchmarks.lag_probe.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    dags = {DAG_ID: dag_source(ids, probe_path)}
    connections = {"AIRFLOW_CONN_DUNE_DEFAULT": emulator.conn_json()}
    with airflow_deployment(dags, connections=connections, extra_env=extra_env) as deployment:
        yield deployment


def run(
    *,
    tasks: int,
    seconds: float,
    warmup: float = 10.0,
    idle_seconds: float | None = None,
    command: str = "",
    profile: bool = False,
    profile_seconds: float = 20.0,
    frozen_seconds: float | None = None,
) -> BenchResult:
    result = BenchResult(NAME)
    # psutil reads CPU time in 10 ms ticks: 10 s keeps the idle rate within ~1 ms/s.
    idle_seconds = idle_seconds if idle_seconds is not None else 10.0
    with EmulatorProcess(execution_seconds=100_000) as emulator, tempfile.TemporaryDirectory() as tmp:
        ids = submit_pipelines(emulator.base_url, tasks)
        ids_file = str(Path(tmp) / "ids.json")
        Path(ids_file).write_text(json.dumps(ids))
        prefix = str(Path(tmp) / "profile") if profile else None
        probe_path = str(Path(tmp) / "lag.jsonl")
        real: dict[str, Any] = {}
        frozen: dict[str, Any] = {}
        baseline: dict[str, Any] = {}
        profiles: dict[str, Any] = {}
        try:
            with deployment_for(emulator, ids, probe_path) as deployment:
                phase = "booting the deployment"
                try:
                    started = time.monotonic()
                    boot(deployment, prefix)
                    real["boot_seconds"] = time.monotonic() - started
                    phase = "starting the lag probe"
                    start_probe(deployment, probe_path)
                    phase = "measuring the idle triggerer"
                    real["idle_cpu_cores"] = measure_idle(deployment, idle_seconds)
                    phase = "running the tasks until they defer"
                    deployment.airflow("dags", "unpause", DAG_ID)
                    deployment.airflow("dags", "trigger", DAG_ID)
                    real["defer_seconds"] = wait_until_deferred(deployment, tasks, timeout=180 + 3 * tasks)
                    wait_until_polled(emulator, deployment, ids, timeout=120)
                    phase = "measuring the triggerer"
                    time.sleep(warmup)
                    real.update(measure_window(emulator, deployment, ids, seconds))
                    real["lag"] = lag_summary(probe_records(probe_path), *real["window_epochs"])
                    states, assigned = counts(deployment)
                    real["task_states_after"] = dict(states)
                    real["triggers_assigned_after"] = assigned
                    if prefix is not None:
                        phase = "profiling the triggerer"
                        profiles["real"] = profile_triggerer(
                            emulator, deployment, ids, prefix, min(profile_seconds, seconds)
                        )
                    if frozen_seconds:
                        # The same deployment and triggers; a new triggerer that freezes its
                        # start-up heap through airflow_local_settings.py.
                        phase = "restarting the triggerer with gc.freeze() at start-up"
                        started = time.monotonic()
                        restart_triggerer(deployment, tasks, LOCAL_SETTINGS)
                        wait_until_polled(emulator, deployment, ids, timeout=120)
                        frozen["restart_seconds"] = time.monotonic() - started
                        phase = "measuring the frozen triggerer"
                        time.sleep(warmup)
                        frozen.update(measure_window(emulator, deployment, ids, frozen_seconds))
                        frozen["lag"] = lag_summary(probe_records(probe_path), *frozen["window_epochs"])
                        states, assigned = counts(deployment)
                        frozen["task_states_after"] = dict(states)
                        frozen["triggers_assigned_after"] = assigned
                    real["probe_starts"] = [r for r in probe_records(probe_path) if r.get("start")]
                    phase = "running the in-process baseline"
                    deployment.kill("triggerer")
                    # The baseline runs with the scheduler, DAG processor and API server still up, so
                    # that the machine is as busy as it was while the triggerer was measured.
                    emulator.clear_log()
                    baseline.update(
                        run_worker(
                            "benchmarks.loop_worker",
                            baseline_args(emulator, ids_file, warmup, seconds),
                            env={"AIRFLOW_CONN_DUNE_DEFAULT": emulator.conn_json()},
                            timeout=warmup + seconds + 300,
                        )
                    )
                    # Its window ended just before it returned: the last `seconds` of its polls.
                    _, _, times = polls_between(emulator, ids, 0.0, math.inf)
                    if times:
                        baseline["mean_burst"] = mean_burst([t for t in times if t >= times[-1] - seconds])
                    # The same worker with no pipelines: the cost of its own probes (a 10 ms
                    # heartbeat, a psutil sampler) per second, a fixed cost outside any trigger.
                    no_ids_file = str(Path(tmp) / "no-ids.json")
                    Path(no_ids_file).write_text("[]")
                    probes = run_worker(
                        "benchmarks.loop_worker",
                        baseline_args(emulator, no_ids_file, min(warmup, 2.0), min(seconds, 30.0)),
                        env={"AIRFLOW_CONN_DUNE_DEFAULT": emulator.conn_json()},
                        timeout=seconds + 300,
                    )
                    baseline["probes_cpu_cores"] = probes["cpu_seconds"] / probes["window_seconds"]
                    if prefix is not None:
                        profiles["baseline"] = profile_baseline(
                            emulator, ids, ids_file, prefix, warmup, min(profile_seconds, seconds)
                        )
                    deployment.passed = True
                except Exception as exc:
                    raise DeploymentFailed(
                        f"{phase}: {type(exc).__name__}: {exc}\n"
                        f"{deployment.diagnostics(12, components_only=True)}\n"
                        f"(Airflow home kept in {deployment.home})"
                    ) from exc
        except DeploymentFailed as exc:
            result.skipped = str(exc)
            result.details = {"real": real, "frozen": frozen, "baseline": baseline}
            return result
    result.details = {
        "real": real,
        "frozen": frozen,
        "baseline": baseline,
        "tasks": tasks,
        "seconds": seconds,
        "warmup": warmup,
    }
    if profiles:
        result.details["profile"] = profiles
    result.figures.extend(figures(real, baseline, tasks, seconds, command, profiled=profile))
    result.figures.extend(lag_figures(real, frozen, command))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_triggerer", description=__doc__)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--frozen-seconds",
        type=float,
        default=None,
        help="window of the frozen variant (gc.freeze() at start-up); 0 skips it (default: --seconds)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile both sides after the window")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--json", action="store_true", help="print the details as JSON too")
    args = parser.parse_args(argv)
    from benchmarks.__main__ import show

    started = time.monotonic()
    result = run(
        tasks=args.tasks,
        seconds=args.seconds,
        warmup=args.warmup,
        command="python -m benchmarks.real_triggerer " + " ".join(argv or sys.argv[1:]),
        profile=args.profile,
        profile_seconds=args.profile_seconds,
        frozen_seconds=args.seconds if args.frozen_seconds is None else args.frozen_seconds,
    )
    show(result)
    for figure in result.figures:
        if figure.notes:
            print(f"   - {figure.name}: {figure.notes}")
    if args.json:
        print(json.dumps(result.details, indent=1, default=str))
    if "profile" in result.details:
        print_profile(result.details["profile"])
    print(f"took {time.monotonic() - started:.0f} s")
    return 1 if result.skipped or any(f.passed is False for f in result.figures) else 0


if __name__ == "__main__":
    sys.exit(main())
