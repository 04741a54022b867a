"""The key's request budget as the hooks use it: every attempt takes a slot, cancels never wait."""

from __future__ import annotations

import json

import pytest

from airflow_provider_dune.hooks.budget import RequestClass
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.runs.dune import DunePipelineRun
from tests.conftest import TEST_API_KEY, TEST_BASE_URL

STATUS = f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status"
CANCEL = f"{TEST_BASE_URL}/v1/execution/E2/cancel"
RUNNING = {
    "status": "executing",
    "node_executions": [
        {"id": 1, "query_execution_status": {"status": "executing", "query_id": 5, "execution_id": "E2"}}
    ],
}


@pytest.fixture
def sleeps(monkeypatch):
    """Every wait the transport asks for, recorded instead of slept (no time passes)."""
    recorded: list[float] = []
    monkeypatch.setattr("airflow_provider_dune.hooks.http.time.sleep", recorded.append)
    return recorded


@pytest.fixture
def budgeted(monkeypatch):
    """``dune_default`` with a budget of 60 reads (and 60 low-limit requests) a minute, all its own."""
    extras = {"rate_limit_per_minute": 60, "low_rate_limit_per_minute": 60, "rate_limit_share": 1}
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUNE_DEFAULT",
        json.dumps({"conn_type": "dune", "password": TEST_API_KEY, "host": TEST_BASE_URL, "extra": extras}),
    )


@pytest.mark.usefixtures("budgeted")
def test_reads_wait_their_turn_and_the_wait_is_counted(requests_mock, sleeps):
    requests_mock.get(STATUS, json=RUNNING)
    hook = DuneHook()
    for _ in range(4):
        hook.get_pipeline_status("P1")
    # One a second: the first two go at once (the burst), the next wait 1 s and 2 s.
    assert sleeps == [pytest.approx(1.0, abs=0.05), pytest.approx(2.0, abs=0.05)]
    assert hook.budget_delay_seconds == pytest.approx(3.0, abs=0.1)
    assert DunePipelineRun(hook, "P1").budget_delay() == hook.budget_delay_seconds


@pytest.mark.usefixtures("budgeted")
def test_a_kill_cancels_at_once_however_full_the_budget(requests_mock, sleeps):
    requests_mock.get(STATUS, json=RUNNING)
    requests_mock.post(CANCEL, json={"success": True})
    hook = DuneHook()
    for _ in range(30):
        hook.get_pipeline_status("P1")  # polls have queued up half a minute of reads
    sleeps.clear()
    assert DunePipelineRun(hook, "P1").cancel() == ["E2"]
    assert sleeps == []  # neither the cancel's status read nor the cancel itself waited


@pytest.mark.usefixtures("budgeted")
def test_submissions_do_not_wait_behind_reads(requests_mock, sleeps):
    requests_mock.get(STATUS, json=RUNNING)
    requests_mock.post(f"{TEST_BASE_URL}/v1/pipelines/execute", json={"pipeline_execution_id": "P2"})
    hook = DuneHook()
    for _ in range(30):
        hook.get_pipeline_status("P1")
    sleeps.clear()
    assert hook.execute_pipeline(query_id=5) == "P2"
    assert sleeps == []


@pytest.mark.usefixtures("budgeted")
def test_a_429_slows_the_whole_key_down(requests_mock, sleeps):
    requests_mock.get(STATUS, [{"status_code": 429, "json": {"error": "slow down"}}, {"json": RUNNING}])
    hook = DuneHook(retry_delay=0.01)
    hook.get_pipeline_status("P1")
    assert hook._budget is not None
    # Halved, then nudged back up by the one answer that followed.
    assert hook._budget.per_minute(RequestClass.HIGH) == pytest.approx(31.0)
    # Another hook on the same key shares the slowed budget: one limit per key, per process.
    other = DuneHook()
    other._credentials()
    assert other._budget is hook._budget
