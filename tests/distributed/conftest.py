"""One distributed Airflow for the whole suite: PostgreSQL, Celery on Redis, two triggerers.

Booting it (migrating PostgreSQL, starting eight processes) takes about a minute on two
cores, so the tests share it: each has its own DAG and its own emulator (its own connection),
so that each test reads only its own traffic. See :mod:`harness.deployment` for the shape.

Every test here is marked ``distributed``: plain ``pytest`` and ``make test`` leave them out
(``addopts`` in pyproject.toml), ``make test-distributed`` runs them. Where the servers cannot
run, the suite is skipped with the reason, except under CI (``CI=true``): there it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from harness.deployment import DISTRIBUTED, AirflowDeployment, DeploymentUnavailable, airflow_deployment
from harness.servers import ServerMissing
from tests.distributed import dags

DUNE_KEY = "dune-distributed-key-5c0e9b7d1a"
WORKER_DUNE_KEY = "dune-distributed-worker-key-8e2f4a61"
MAIA_SECRET = "maia-distributed-secret-3d7b9f02"
# Runs long enough that no trigger fires within seconds of its deferral (apache/airflow
# #66374: the scheduler can then fail the resumed task on a stale executor event).
DUNE_EXECUTION_SECONDS = 90.0
MAIA_EXECUTION_SECONDS = 150.0

SETTINGS = {
    # A dead triggerer's triggers go to a live one once its heartbeat is older than the
    # threshold (30 s by default); shorter, so that the failover test need not wait as long.
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    # A task whose worker died stops heartbeating; after this long the scheduler fails the
    # try (and retries it). The default is 300 s.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}


def _emulator(**kwargs: Any) -> Iterator[Any]:
    from airflow_provider_dune.emulator import DuneEmulator

    emulator = DuneEmulator(**kwargs).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="package")
def dune() -> Iterator[Any]:
    """The failover test's Dune and Maia (connections ``dune_default``, ``maia_default``)."""
    yield from _emulator(
        api_key=DUNE_KEY,
        execution_seconds=DUNE_EXECUTION_SECONDS,
        maia_client_secret=MAIA_SECRET,
        maia_execution_seconds=MAIA_EXECUTION_SECONDS,
    )


@pytest.fixture(scope="package")
def worker_dune() -> Iterator[Any]:
    """The worker-kill test's Dune (connection ``dune_worker``)."""
    # Each of the 2 nodes runs this long: the pipeline still runs when the retry starts (the
    # heartbeat timeout, its detection and the retry take about 30 s).
    yield from _emulator(api_key=WORKER_DUNE_KEY, execution_seconds=30.0)


@pytest.fixture(scope="package")
def deployment(request: pytest.FixtureRequest, dune: Any, worker_dune: Any) -> Iterator[AirflowDeployment]:
    connections = {
        **dune.connection_env(),
        **dune.maia_connection_env(),
        **worker_dune.connection_env(dags.WORKER_CONN_ID),
    }
    failed_before = request.session.testsfailed
    try:
        with airflow_deployment(
            dags.ALL, connections=connections, shape=DISTRIBUTED, extra_env=SETTINGS
        ) as deployment:
            try:
                deployment.boot(*dags.ALL)
            except BaseException:
                print(deployment.diagnostics(components_only=True))
                raise
            yield deployment
            deployment.passed = request.session.testsfailed == failed_before
    except (DeploymentUnavailable, ServerMissing) as missing:
        if os.environ.get("CI"):
            pytest.fail(f"the distributed suite cannot run here: {missing}")
        pytest.skip(f"the distributed suite cannot run here: {missing}")
