"""The Dune run adapters turn each status read into a RunState, once per distinct answer."""

from __future__ import annotations

import pytest

from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.runs.dune import DuneExecutionRun, DunePipelineRun
from airflow_provider_dune.runs.outcome import RunOutcome
from tests.conftest import TEST_BASE_URL


@pytest.fixture
def hook(dune_conn):
    return DuneHook(retry_delay=0.01)


def pipeline(node_status: str, status: str = "executing") -> dict:
    return {
        "status": status,
        "node_executions": [
            {"id": 1, "query_execution_status": {"status": node_status, "query_id": 9, "execution_id": "E1"}}
        ],
    }


def test_pipeline_state_is_rebuilt_only_when_the_answer_changes(hook, requests_mock):
    requests_mock.get(
        f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status",
        [
            {"json": pipeline("executing")},
            {"json": pipeline("executing")},
            {"json": pipeline("completed", "completed")},
        ],
    )
    run = DunePipelineRun(hook, "P1")
    first, second, third = run.get_state(), run.get_state(), run.get_state()
    assert second is first
    assert (first.outcome, first.summary) == (RunOutcome.RUNNING, "executing, 0/1 nodes done")
    assert (third.outcome, third.summary) == (RunOutcome.SUCCEEDED, "completed, 1/1 nodes done")
    assert third.payload["node_executions"][0]["status"] == "completed"


def test_execution_state_is_rebuilt_only_when_the_answer_changes(hook, requests_mock):
    requests_mock.get(
        f"{TEST_BASE_URL}/v1/execution/E1/status",
        [
            {"json": {"execution_id": "E1", "state": "QUERY_STATE_EXECUTING"}},
            {"json": {"execution_id": "E1", "state": "QUERY_STATE_EXECUTING"}},
            {"json": {"execution_id": "E1", "state": "QUERY_STATE_COMPLETED"}},
        ],
    )
    run = DuneExecutionRun(hook, "E1")
    first, second, third = run.get_state(), run.get_state(), run.get_state()
    assert second is first
    assert first.outcome is RunOutcome.RUNNING
    assert third.outcome is RunOutcome.SUCCEEDED
    assert third.payload["execution"]["state"] == "QUERY_STATE_COMPLETED"
