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
    cost = requests_mock.get(f"{TEST_BASE_URL}/v1/execution/E1/status", json=execution("E1", 12.5))
    run = DunePipelineRun(hook, "P1")
    first, second = run.get_state(), run.get_state()
    assert second is first
    # Without a budget, nothing is priced while the pipeline runs.
    assert cost.call_count == 0
    third = run.get_state()
    assert (first.outcome, first.summary) == (RunOutcome.RUNNING, "executing, 0/1 nodes done")
    assert (third.outcome, third.summary) == (RunOutcome.SUCCEEDED, "completed, 1/1 nodes done")
    assert third.payload["node_executions"][0]["status"] == "completed"
    # Once it ended: each node's execution read once for its cost.
    assert cost.call_count == 1
    assert third.payload["node_executions"][0]["credits"] == 12.5
    assert third.payload["credits_used"] == 12.5
    assert "12.5 credits (node 1: 12.5)" in third.message


def execution(execution_id: str, credits: float, state: str = "QUERY_STATE_COMPLETED") -> dict:
    return {
        "execution_id": execution_id,
        "state": state,
        "is_execution_finished": True,
        "execution_cost_credits": credits,
    }


def three_nodes(states: tuple[str, str, str], status: str = "executing") -> dict:
    return {
        "status": status,
        "node_executions": [
            {"id": i, "query_execution_status": {"status": st, "query_id": 9, "execution_id": f"E{i}"}}
            for i, st in enumerate(states, start=1)
        ],
    }


def test_a_pipeline_over_its_budget_cancels_what_still_runs_and_fails(hook, requests_mock):
    requests_mock.get(
        f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status",
        [
            {"json": three_nodes(("executing", "pending", "pending"))},
            {"json": three_nodes(("completed", "executing", "pending"))},
            {"json": three_nodes(("completed", "completed", "executing"))},
            {"json": three_nodes(("completed", "completed", "cancelled"), status="completed")},
        ],
    )
    costs = {
        f"E{i}": requests_mock.get(f"{TEST_BASE_URL}/v1/execution/E{i}/status", json=execution(f"E{i}", 10))
        for i in (1, 2, 3)
    }
    cancel = requests_mock.post(f"{TEST_BASE_URL}/v1/execution/E3/cancel", json={"success": True})
    run = DunePipelineRun(hook, "P1", max_credits=15)
    assert run.get_state().outcome is RunOutcome.RUNNING
    second = run.get_state()
    assert second.outcome is RunOutcome.RUNNING and second.payload["credits_used"] == 10
    # Past the budget: the running node is cancelled; the wait goes on until the pipeline ended.
    third = run.get_state()
    assert third.outcome is RunOutcome.RUNNING and cancel.call_count == 1
    fourth = run.get_state()
    assert fourth.outcome is RunOutcome.FAILED
    # The cancelled node's cost counts too: Dune bills what it ran before the cancel.
    assert "used 30 credits, more than max_credits=15" in fourth.message
    assert "still running (E3)" in fourth.message
    assert fourth.payload["credits_used"] == 30
    # Each finished node priced once, as it finished; the cancelled one too, once it ended.
    assert [costs[e].call_count for e in ("E1", "E2", "E3")] == [1, 1, 1]


@pytest.mark.parametrize(("budget", "outcome"), [(15, RunOutcome.SUCCEEDED), (14.5, RunOutcome.FAILED)])
def test_the_budget_is_passed_only_above_it(hook, requests_mock, budget, outcome):
    requests_mock.get(
        f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status",
        json=three_nodes(("completed", "completed", "completed"), status="completed"),
    )
    for i in (1, 2, 3):
        requests_mock.get(f"{TEST_BASE_URL}/v1/execution/E{i}/status", json=execution(f"E{i}", 5))
    state = DunePipelineRun(hook, "P1", max_credits=budget).get_state()
    assert state.outcome is outcome
    assert state.payload["credits_used"] == 15


async def test_the_async_read_applies_the_budget_too(hook, requests_mock):
    from unittest import mock

    status = hook.get_pipeline_status  # parse helper through a sync read
    requests_mock.get(
        f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status",
        json=three_nodes(("completed", "executing", "pending")),
    )
    parsed = status("P1")
    costly = hook.get_execution_status
    requests_mock.get(f"{TEST_BASE_URL}/v1/execution/E1/status", json=execution("E1", 30))
    priced = costly("E1")
    run = DunePipelineRun(hook, "P1", max_credits=15)
    with (
        mock.patch.object(hook, "aget_pipeline_status", mock.AsyncMock(return_value=parsed)),
        mock.patch.object(hook, "aget_execution_status", mock.AsyncMock(return_value=priced)),
        mock.patch.object(hook, "acancel_execution", mock.AsyncMock(return_value=True)) as cancel,
    ):
        state = await run.aget_state()
    assert state.outcome is RunOutcome.RUNNING  # cancelling; it fails once the pipeline ended
    # Every node that has an execution and has not finished: queued ones too.
    assert [c.args for c in cancel.await_args_list] == [("E2",), ("E3",)]


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
    assert third.payload["credits_used"] is None
    assert third.payload["execution"]["state"] == "QUERY_STATE_COMPLETED"


def failed_pipeline() -> dict:
    return {
        "status": "failed",
        "node_executions": [
            {
                "id": 1,
                "query_execution_status": {
                    "status": "failed",
                    "query_id": 9,
                    "execution_id": "E1",
                    "error": "Table 'x' does not exist",
                },
            }
        ],
    }


def test_a_triggers_run_leaves_the_cost_to_the_resuming_task(hook, requests_mock):
    requests_mock.get(
        f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status", json=pipeline("completed", "completed")
    )
    cost = requests_mock.get(f"{TEST_BASE_URL}/v1/execution/E1/status", json=execution("E1", 12.5))
    in_trigger = DunePipelineRun(hook, "P1", price_at_end=False).get_state()
    assert cost.call_count == 0 and in_trigger.payload["credits_used"] is None
    event = {"status": "success", "pipeline_execution_id": "P1", **in_trigger.payload, "message": "m"}
    event["budget_delay_seconds"] = 3.0

    completed = DunePipelineRun(hook, "P1").complete_event(event)
    assert cost.call_count == 1
    assert completed["credits_used"] == 12.5
    assert completed["node_executions"][0]["credits"] == 12.5
    assert "12.5 credits (node 1: 12.5)" in completed["message"]
    assert completed["budget_delay_seconds"] == 3.0  # what the trigger measured is kept
    # An event that carries its cost already (a trigger with max_credits) costs no read.
    assert DunePipelineRun(hook, "P1").complete_event(completed) == completed
    assert cost.call_count == 1


@pytest.mark.parametrize(
    "event",
    [
        {"status": "timeout", "pipeline_execution_id": "P1", "node_executions": [], "message": "m"},
        {
            "status": "error",
            "pipeline_execution_id": "P1",
            "node_executions": [],
            "unreadable": True,
            "message": "m",
        },
    ],
)
def test_an_event_that_did_not_see_the_end_is_not_priced(hook, requests_mock, event):
    status = requests_mock.get(f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status", json={})
    assert DunePipelineRun(hook, "P1").complete_event(event) is event
    assert status.call_count == 0


def test_a_cost_that_cannot_be_read_leaves_the_event_as_it_was(hook, requests_mock):
    requests_mock.get(
        f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status", status_code=404, json={"error": "x"}
    )
    event = {
        "status": "success",
        "pipeline_execution_id": "P1",
        "node_executions": [{"node_id": 1, "execution_id": "E1", "credits": None}],
        "message": "m",
    }
    assert DunePipelineRun(hook, "P1").complete_event(event) is event


def test_a_failed_nodes_position_comes_from_the_read_that_priced_it(hook, requests_mock):
    requests_mock.get(f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status", json=failed_pipeline())
    node = requests_mock.get(
        f"{TEST_BASE_URL}/v1/execution/E1/status",
        json={
            **execution("E1", 10, state="QUERY_STATE_FAILED"),
            "error": {
                "type": "FAILED_TYPE_EXECUTION_FAILED",
                "message": "no table",
                "metadata": {"line": 3, "column": 7},
            },
        },
    )
    run = DunePipelineRun(hook, "P1")
    state = run.get_state()
    assert state.outcome is RunOutcome.FAILED and node.call_count == 1
    assert run.failure_details(state.payload) == "  node 1: FAILED_TYPE_EXECUTION_FAILED at line 3, column 7"
    assert node.call_count == 1
