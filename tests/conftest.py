"""Test-wide setup: a throwaway Airflow home on SQLite, set before Airflow is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Every exchange with the emulator in this run is checked against Dune's OpenAPI contract.
pytest_plugins = ["tests.contract.plugin"]

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-dune-tests-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# Airflow 3 runs only DAGs found in a bundle: tests write their DAG files here.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(os.environ["AIRFLOW_HOME"]) / "dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# The trigger's hold against Airflow's scheduler race (docs/reliability.md) only matters where a
# real scheduler runs: tests/e2e sets its own, and dag.test() needs none.
os.environ.setdefault("AIRFLOW__DUNE__DEFERRAL_EVENT_HOLD", "0")
REPO_ROOT = Path(__file__).parents[1]

# A key no test or log could contain by chance: tests scan for it to prove it never leaks.
TEST_API_KEY = "dune-test-key-7f3a9c21e5"
TEST_BASE_URL = "https://dune.test/api"


@pytest.fixture
def dune_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """The default Dune connection pointing at a host that only mocks answer."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUNE_DEFAULT",
        f'{{"conn_type": "dune", "password": "{TEST_API_KEY}", "host": "{TEST_BASE_URL}"}}',
    )
    return TEST_API_KEY


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The metadata database, created once per run (only tests that run tasks need it)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )


@pytest.fixture
def threaded_dune(monkeypatch: pytest.MonkeyPatch):
    """The scripted server in a thread, for sync code and Airflow task runs."""
    from tests.scripted_server import ThreadedScriptedServer

    server = ThreadedScriptedServer()
    server.start_in_thread()
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUNE_DEFAULT",
        f'{{"conn_type": "dune", "password": "{TEST_API_KEY}", "host": "{server.base_url}"}}',
    )
    yield server
    server.stop_thread()


@pytest.fixture
async def scripted_dune(monkeypatch: pytest.MonkeyPatch):
    """A real loopback HTTP server with scripted answers, and the default connection aimed at it."""
    from airflow_provider_dune.hooks.dune import close_shared_async_session
    from tests.scripted_server import ScriptedServer

    server = ScriptedServer()
    await server.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUNE_DEFAULT",
        f'{{"conn_type": "dune", "password": "{TEST_API_KEY}", "host": "{server.base_url}"}}',
    )
    yield server
    await close_shared_async_session()
    await server.stop()


@pytest.fixture(autouse=True)
def _fresh_request_budgets():
    """Budgets are per process (as in a triggerer): one test's 429s must not slow the next."""
    from airflow_provider_dune.hooks.budget import forget_budgets

    forget_budgets()
    yield
    forget_budgets()
