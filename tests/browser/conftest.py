"""The Airflow 3 UI of a running deployment, driven by headless Chromium through Playwright.

One deployment for the suite (:data:`harness.deployment.LOCAL` with the whole UI served,
connection testing enabled), one emulator for Dune and Maia, and one DAG run that has
finished before the first test: a pipeline task (its extra link, its XCom) and a
materialized view refresh (its Asset event). The browser is Debian's Chromium
(``apt-get install chromium``, or ``make chromium``): Playwright cannot download its own here.

Every test here is marked ``browser``: ``make test-browser`` runs them, ``make screenshots``
also writes the screenshots the README and docs show into ``docs/img/`` (``SCREENSHOTS_DIR``).
Without Chromium or on Airflow 2 the suite is skipped with the reason, except under CI
(``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.deployment import AIRFLOW_3, AirflowDeployment, airflow_deployment

DAG_ID = "example_dune_ui"
PIPELINE_TASK = "refresh_top_projects"
VIEW_TASK = "refresh_view"
VIEW = "dune.emulator.result_dex_daily_volume"
DUNE_KEY = "dune-browser-key-4f9a1c7e2b"
MAIA_SECRET = "maia-browser-secret-6d2e8b0a"
# What this sandbox needs (no GPU, no network but loopback, root); harmless elsewhere.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAG = f"""
import datetime

from airflow.sdk import DAG

from airflow_provider_dune.operators.dune import (
    DuneRefreshMaterializedViewOperator,
    DuneRunPipelineOperator,
)

with DAG("{DAG_ID}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
    pipeline = DuneRunPipelineOperator(task_id="{PIPELINE_TASK}", query_id=1001, poll_interval=1)
    view = DuneRefreshMaterializedViewOperator(task_id="{VIEW_TASK}", name="{VIEW}", poll_interval=1)
    pipeline >> view
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser checks cannot run here: {reason}")
    pytest.skip(f"the browser checks cannot run here: {reason}")


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        _unavailable("no Chromium: install Debian's package (`make chromium`, as root) or set CHROMIUM")
    assert found is not None
    return found


@pytest.fixture(scope="package")
def dune() -> Iterator[Any]:
    from airflow_provider_dune.emulator import DuneEmulator

    with DuneEmulator(api_key=DUNE_KEY, execution_seconds=1.0, maia_client_secret=MAIA_SECRET) as emulator:
        yield emulator


@pytest.fixture(scope="package")
def deployment(request: pytest.FixtureRequest, dune: Any) -> Iterator[AirflowDeployment]:
    """The deployment, after one run of the DAG has succeeded."""
    if not AIRFLOW_3:
        _unavailable("the browser checks drive Airflow 3's UI")
    failed_before = request.session.testsfailed
    with airflow_deployment({DAG_ID: DAG}, connections=dune.connection_env(), ui=True) as deployment:
        try:
            deployment.boot(DAG_ID)
            deployment.airflow("dags", "trigger", DAG_ID)
            state = deployment.wait_for_run(DAG_ID, timeout=180)
            assert state == "success", (state, deployment.task_states(DAG_ID))
        except BaseException:
            print(deployment.diagnostics(components_only=False))
            raise
        yield deployment
        deployment.passed = request.session.testsfailed == failed_before


@pytest.fixture(scope="package")
def run_id(deployment: AirflowDeployment) -> str:
    [(value,)] = deployment.query("SELECT run_id FROM dag_run WHERE dag_id = :dag_id", dag_id=DAG_ID)
    return str(value)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile,
        sync_playwright() as playwright,
    ):
        # A persistent context is the one way to hand Chromium a fresh --user-data-dir.
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any, deployment: AirflowDeployment) -> Iterator[Any]:
    page = browser.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        page.close()


@pytest.fixture(scope="package")
def screenshots() -> Iterator[Path]:
    """Where screenshots go: ``SCREENSHOTS_DIR`` (``make screenshots``: docs/img), else a temp folder."""
    chosen = os.environ.get("SCREENSHOTS_DIR")
    if chosen:
        folder = Path(chosen)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="airflow-dune-screenshots-") as folder:
        yield Path(folder)
