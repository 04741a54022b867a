"""Many deferred waits on one API key in a real triggerer: the key's budget, not a 429 storm.

30 mapped tasks start pipelines of 40-100 s on one key (``wait_for_termination=False``); 30
mapped deferrable ``DunePipelineSensor`` s wait for them through a real scheduler, API server,
DAG processor and ``airflow triggerer``.
The emulator enforces 120 reads a minute for the key (a custom plan: Dune's own are 40, 200 and
1000); the connection gives the triggerer 30% of it (``rate_limit_per_minute=120``,
``rate_limit_share=0.3``: 36 reads a minute), leaving the rest to the key's other clients, here
the 60 task processes that each read a status once. Polling every 5 s, the 30 waits would want
360 reads a minute: the budget stretches them evenly.

Every task must succeed, the waits must meet almost no 429 (at most 1% of status reads), and
each task says in XCom (``budget_delay_seconds``) and in its trigger's log that the budget
slowed it. The in-process figures at 500 pipelines are in benchmarks/rate_budget.py.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.deployment import AIRFLOW_3, AIRFLOW_VERSION, airflow_deployment, reported

pytestmark = [
    pytest.mark.scale,
    pytest.mark.skipif(
        not AIRFLOW_3, reason="one deferred wait at a time on Airflow 2.11's SequentialExecutor"
    ),
]

API_KEY = "dune-e2e-budget-key-8c1f5e07a2d9"
DAG_ID = "e2e_rate_budget"
WAITS = 30
READS_PER_MINUTE = 120
LENGTHS = (40, 60, 80, 100)
CATALOG = {
    "queries": [
        {"id": 5000 + seconds, "name": f"{seconds} s", "sql": "SELECT 1 AS n", "execution_seconds": seconds}
        for seconds in LENGTHS
    ]
}
STATUS_PREFIX = "/api/v1/pipelines/executions/"
CREDITS_PER_NODE = 10.0  # the emulator's medium tier, a pipeline's default

DAG = """
import datetime

from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from airflow_provider_dune.sensors.dune import DunePipelineSensor

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
    start = DuneRunPipelineOperator.partial(task_id="start", wait_for_termination=False).expand(
        query_id={query_ids!r}
    )
    DunePipelineSensor.partial(
        task_id="wait", deferrable=True, defer_after=0, poke_interval=5, timeout=900
    ).expand(pipeline_execution_id=start.output)
"""


@pytest.fixture
def dune() -> Iterator[Any]:
    from airflow_provider_dune.emulator import DuneEmulator
    from airflow_provider_dune.emulator.rate_limits import RatePlan

    plan = RatePlan("e2e", low_limit=10_000, high_limit=READS_PER_MINUTE)
    emulator = DuneEmulator(api_key=API_KEY, catalog=CATALOG, plan=plan).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def test_many_deferred_waits_share_the_keys_budget_without_a_429_storm(dune: Any) -> None:
    extras = {"rate_limit_per_minute": READS_PER_MINUTE, "rate_limit_share": 0.3}
    conn = {**json.loads(dune.airflow_conn_json()), "extra": extras}
    connections = {"AIRFLOW_CONN_DUNE_DEFAULT": json.dumps(conn)}
    rng = random.Random(18)
    dag = DAG.format(dag_id=DAG_ID, query_ids=[5000 + rng.choice(LENGTHS) for _ in range(WAITS)])
    env = {"AIRFLOW__CORE__PARALLELISM": "8"}
    with (
        airflow_deployment({DAG_ID: dag}, connections=connections, extra_env=env) as deployment,
        reported(dune, deployment),
    ):
        deployment.boot(DAG_ID)
        since = time.time()
        deployment.airflow("dags", "trigger", DAG_ID)
        state = deployment.wait_for_run(DAG_ID, timeout=600)
        states = deployment.query(
            "SELECT map_index, state FROM task_instance WHERE dag_id = :dag_id", dag_id=DAG_ID
        )
        reads = [
            entry
            for entry in dune.request_log.entries()
            if entry.time >= since and entry.method == "GET" and entry.path.startswith(STATUS_PREFIX)
        ]
        throttled = sum(1 for entry in reads if entry.status == 429)
        delays = deployment.query(
            "SELECT value FROM xcom WHERE dag_id = :dag_id AND task_id = 'wait' "
            "AND key = 'budget_delay_seconds'",
            dag_id=DAG_ID,
        )
        slowed = sorted(float(value) for (value,) in delays)
        # Each wait's cost was read once per pipeline by the sensor resuming in a worker, not by
        # the trigger (where the read would queue behind the other waits' polls).
        costs = deployment.query(
            "SELECT value FROM xcom WHERE dag_id = :dag_id AND task_id = 'wait' AND key = 'credits_used'",
            dag_id=DAG_ID,
        )
        cost_reads = dune.request_log.count(method="GET", path_prefix="/api/v1/execution/")
        print(
            f"Airflow {AIRFLOW_VERSION}: run {state} after {time.time() - since:.0f}s; {len(reads)} "
            f"status reads, {throttled} answered 429; the waits' budget delays (s): {slowed}"
        )
        assert state == "success", states
        assert sorted(ti_state for _, ti_state in states) == ["success"] * (2 * WAITS)
        assert throttled <= 0.01 * len(reads), (throttled, len(reads))
        # The budget was binding: most waits were slowed, and they say so.
        assert len(slowed) >= WAITS // 2, slowed
        assert "request budget in this process" in deployment.logs_text()
        assert sorted(float(value) for (value,) in costs) == [CREDITS_PER_NODE] * WAITS
        assert cost_reads == WAITS
