"""Two triggerers share 200 deferred tasks; one is SIGKILLed mid-wait and the other takes over.

The failover DAG (:mod:`tests.distributed.dags`) holds 200 deferrable tasks of every kind the
provider has. The test starts the runs its sensors wait for, triggers the DAG, and waits
until every task has deferred (the first runs may end meanwhile: two Celery workers take a
few minutes to start 200 tasks on two cores); both triggerers must have taken a share. It
then SIGKILLs the triggerer holding more triggers, so that nothing in it cleans up, and
checks that:

* the surviving triggerer takes every orphaned trigger once the dead one's heartbeat is
  older than ``[triggerer] triggerer_health_check_threshold`` (10 s here), and polls those runs;
* every task ends in success, each Dune and Maia run was started once (the emulator's request
  log), and no event reached a task twice (each ran once to defer, once to resume);
* neither the Dune key nor the Maia client secret is in any log, trigger row or database row.

About 5-8 minutes on two cores, most of it the runs' own length (see the conftest).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from typing import Any

import pytest
import requests

from harness.deployment import AIRFLOW_VERSION, AirflowDeployment, reported, wait_for
from tests.distributed import dags
from tests.distributed.conftest import DUNE_KEY, MAIA_SECRET
from tests.e2e.dune_paths import EXECUTE_PIPELINE, EXECUTE_SQL, MAIA_START_SUFFIX

pytestmark = pytest.mark.distributed
RUN_DEADLINE_SECONDS = 900.0
# The sensors' runs start before the DAG run and must outlast the sensors' first poke.
SENSOR_TARGET_SECONDS = 150.0


def _start_sensor_targets(dune: Any) -> dict[str, Any]:
    """The runs the sensors wait for, started as another system would: plain HTTP."""
    headers = {"X-Dune-Api-Key": DUNE_KEY}
    one_query = {"pipeline": {"nodes": [{"id": 1, "query_execution": {"query_id": 1003}}]}}
    task_seconds, dune.execution_seconds = dune.execution_seconds, SENSOR_TARGET_SECONDS
    with requests.Session() as session:
        pipelines = [
            session.post(f"{dune.base_url}/v1/pipelines/execute", json=one_query, headers=headers).json()[
                "pipeline_execution_id"
            ]
            for _ in range(dags.COUNTS["pipeline_sensor"])
        ]
        executions = [
            session.post(f"{dune.base_url}/v1/query/1003/execute", json={}, headers=headers).json()[
                "execution_id"
            ]
            for _ in range(dags.COUNTS["execution_sensor"])
        ]
        token = session.post(
            dune.maia_token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": dune.maia_client_id,
                "client_secret": MAIA_SECRET,
                "audience": "https://api.matillion.com",
            },
        ).json()["access_token"]
        maia_runs = [
            session.post(
                f"{dune.maia_base_url}/v1/projects/{dune.maia_project_id}/pipeline-executions",
                json={
                    "pipelineName": "nightly-load",
                    "environmentName": "Prod",
                    "scalarVariables": {"emulator_seconds": str(SENSOR_TARGET_SECONDS)},
                },
                headers={"Authorization": f"Bearer {token}"},
            ).json()["pipelineExecutionId"]
            for _ in range(dags.COUNTS["maia_sensor"])
        ]
    dune.execution_seconds = task_seconds
    return {
        "pipelines": pipelines,
        "executions": executions,
        "maia_runs": maia_runs,
        "maia_project": dune.maia_project_id,
    }


def _submissions(dune: Any) -> Counter[str]:
    """Every POST that starts work, by kind (the sensors' targets included)."""
    kinds: Counter[str] = Counter()
    for entry in dune.request_log.filter(method="POST"):
        if entry.path == EXECUTE_PIPELINE:
            kinds["pipeline"] += 1
        elif entry.path.endswith("/execute") and "/v1/query/" in entry.path:
            kinds["query"] += 1
        elif entry.path == EXECUTE_SQL:
            kinds["sql"] += 1
        elif entry.path.endswith(MAIA_START_SUFFIX):
            kinds["maia"] += 1
    return kinds


def _run_id(kwargs: dict[str, Any]) -> str:
    return str(kwargs.get("pipeline_execution_id") or kwargs["execution_id"])


class Observer:
    """What the trigger table shows over time: which triggerer took which trigger, for which run."""

    def __init__(self, deployment: AirflowDeployment) -> None:
        from cryptography.fernet import Fernet

        self.deployment = deployment
        self.fernet = Fernet(deployment.env["AIRFLOW__CORE__FERNET_KEY"].encode())
        self.deferred: set[str] = set()  # task ids seen deferred
        self.taken: dict[int, set[int]] = {}  # triggerer job id -> trigger ids it ever held
        self.kwargs: dict[int, str] = {}  # trigger id -> decrypted kwargs

    def look(self) -> dict[int, int | None]:
        """Note the current state; returns trigger id -> triggerer job id for live triggers."""
        rows = self.deployment.query(
            "SELECT ti.task_id, ti.state, t.id, t.triggerer_id, t.kwargs FROM task_instance ti "
            "LEFT JOIN trigger t ON t.id = ti.trigger_id WHERE ti.dag_id = :dag_id",
            dag_id=dags.FAILOVER_DAG_ID,
        )
        live: dict[int, int | None] = {}
        for task_id, state, trigger_id, triggerer_id, kwargs in rows:
            if state == "deferred":
                self.deferred.add(str(task_id))
            if trigger_id is None:
                continue
            live[int(trigger_id)] = triggerer_id
            if triggerer_id is not None:
                self.taken.setdefault(int(triggerer_id), set()).add(int(trigger_id))
            if int(trigger_id) not in self.kwargs:
                text = str(kwargs)
                self.kwargs[int(trigger_id)] = (
                    text if text.startswith("{") else self.fernet.decrypt(text.encode()).decode()
                )
        return live

    def run_of(self, trigger_id: int) -> str:
        return _run_id(json.loads(self.kwargs[trigger_id]))


def test_triggerer_killed_survivor_takes_over(dune: Any, deployment: AirflowDeployment) -> None:
    with reported(dune, deployment):
        _run(dune, deployment)


def _run(dune: Any, deployment: AirflowDeployment) -> None:
    jobs = dict(deployment.triggerer_jobs)
    assert len(jobs) == 2, jobs
    conf = _start_sensor_targets(dune)
    deployment.airflow("dags", "trigger", dags.FAILOVER_DAG_ID, "--conf", json.dumps(conf))
    started = time.monotonic()
    seen = Observer(deployment)

    def all_deferred_once() -> bool:
        seen.look()
        return len(seen.deferred) == dags.TASK_COUNT

    wait_for(deployment, "every task to defer", all_deferred_once, timeout=600)
    deferred_after = time.monotonic() - started
    share = {name: len(seen.taken.get(job, ())) for name, job in jobs.items()}
    # Both triggerers took a share of the 200 triggers.
    assert all(count >= 20 for count in share.values()), share
    live = seen.look()
    held = Counter(live.values())
    victim = max(jobs, key=lambda name: held.get(jobs[name], 0))
    survivor = next(name for name in jobs if name != victim)
    orphans = {trigger for trigger, job in live.items() if job == jobs[victim]}
    # The kill leaves waits behind (else it proves little).
    assert len(orphans) >= 10, (held, jobs)

    killed_at = time.time()
    assert deployment.kill(victim) == -signal.SIGKILL

    def survivor_holds_orphans() -> bool:
        live = seen.look()
        return all(live.get(trigger) == jobs[survivor] for trigger in orphans if trigger in live)

    wait_for(deployment, f"{survivor} to take the triggers of {victim}", survivor_holds_orphans, 120)
    takeover_seconds = time.time() - killed_at

    run_state = deployment.wait_for_run(dags.FAILOVER_DAG_ID, RUN_DEADLINE_SECONDS)
    states = deployment.task_states(dags.FAILOVER_DAG_ID)
    print(
        f"Airflow {AIRFLOW_VERSION}: every task deferred {deferred_after:.0f}s after the trigger; "
        f"triggers taken {share}; killed {victim} holding {len(orphans)} of {len(live)} live triggers; "
        f"{survivor} held them {takeover_seconds:.1f}s later; run {run_state} after "
        f"{time.monotonic() - started:.0f}s"
    )
    assert run_state == "success", Counter(states.values())
    assert set(states.values()) == {"success"}, Counter(states.values())

    # The survivor polled every orphaned run after the kill (no one else could).
    polled_after = {entry.path for entry in dune.request_log.filter(method="GET") if entry.time > killed_at}
    unpolled = [
        trigger
        for trigger in orphans
        if not any(seen.run_of(trigger) in path and path.endswith("/status") for path in polled_after)
    ]
    assert not unpolled, [seen.run_of(trigger) for trigger in unpolled]

    # One start per task (and per sensor target): neither deferral nor the takeover resent one.
    assert _submissions(dune) == {
        "pipeline": dags.COUNTS["pipeline"] + dags.COUNTS["pipeline_sensor"],
        "query": dags.COUNTS["query"] + dags.COUNTS["execution_sensor"],
        "sql": dags.COUNTS["sql"],
        "maia": dags.COUNTS["maia"] + dags.COUNTS["maia_sensor"],
    }
    assert all(entry.status == 200 for entry in dune.request_log.filter(method="GET"))

    # No event reached a task twice: each task ran twice in a Celery worker, once to defer and
    # once to resume (the workers log every workload they execute).
    workloads = Counter(
        match.group(1)
        for name in deployment.workers
        for match in re.finditer(
            rf"Executing workload in Celery: .*?task_id='(\w+)', dag_id='{dags.FAILOVER_DAG_ID}'",
            (deployment.log_dir / f"{name}.log").read_text(errors="replace"),
        )
    )
    assert len(workloads) == dags.TASK_COUNT and set(workloads.values()) == {2}, workloads
    # Every trigger fired. One the killed triggerer fired just before the kill, whose event
    # it never wrote to the database, fires again in the survivor: lost with the process, not
    # delivered twice. (A trigger logs to its task's trigger log, named after the triggerer's
    # job, or once taken over to the triggerer's own output.)
    named = re.compile(rf"{dags.FAILOVER_DAG_ID}/[^/]+/(\w+)/")
    fired: dict[str, list[str]] = {}
    for path in deployment.log_files():
        for line in path.read_text(errors="replace").splitlines():
            if "Trigger fired event" in line and (match := named.search(line)):
                fired.setdefault(match.group(1), []).append(path.name)
    assert len(fired) == dags.TASK_COUNT, sorted(set(workloads) - set(fired))
    victim_log = f".trigger.{jobs[victim]}.log"
    twice = {task: files for task, files in fired.items() if len(files) > 1}
    assert all(len(files) == 2 and any(f.endswith(victim_log) for f in files) for files in twice.values()), (
        twice
    )

    # No key or secret anywhere: trigger rows (decrypted), logs, the PostgreSQL database.
    for kwargs in seen.kwargs.values():
        assert DUNE_KEY not in kwargs and MAIA_SECRET not in kwargs, kwargs
    secrets = (DUNE_KEY.encode(), MAIA_SECRET.encode())
    leaks = [
        str(path.relative_to(deployment.home))
        for path in deployment.log_files()
        if any(secret in path.read_bytes() for secret in secrets)
    ]
    dump = deployment.database_dump()
    assert dags.FAILOVER_DAG_ID.encode() in dump  # the dump holds the rows scanned
    if any(secret in dump for secret in secrets):
        leaks.append("the PostgreSQL metadata database")
    assert not leaks, f"a key was written to {leaks}"
