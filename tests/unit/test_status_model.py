from __future__ import annotations

import logging

import pytest

from airflow_provider_dune.exceptions import DuneResponseError
from airflow_provider_dune.models.dune import parse_execution_status, parse_pipeline_status
from airflow_provider_dune.runs.outcome import RunOutcome, unknown_states


@pytest.fixture(autouse=True)
def _fresh_unknown_state_log():
    unknown_states.reset()
    yield
    unknown_states.reset()


def query_node(node_id, status, query_id=100, execution_id="01EXEC", error=None):
    body = {"status": status, "query_id": query_id, "execution_id": execution_id}
    if error:
        body["error"] = error
    return {"id": node_id, "query_execution_status": body}


def view_node(node_id, status, name="dune.team.result_v", execution_id="01MV", error=None):
    body = {"status": status, "name": name, "execution_id": execution_id}
    if error:
        body["error"] = error
    return {"id": node_id, "materialized_view_refresh_status": body}


def test_running_pipeline():
    s = parse_pipeline_status(
        "P1",
        {"status": "executing", "node_executions": [view_node(1, "completed"), query_node(2, "executing")]},
    )
    assert s.outcome is RunOutcome.RUNNING
    assert not s.is_terminal
    assert s.progress() == "1/2 nodes done"


def test_completed_pipeline_and_node_dicts():
    s = parse_pipeline_status(
        "P1",
        {"status": "completed", "node_executions": [view_node(1, "completed"), query_node(2, "completed")]},
    )
    assert s.outcome is RunOutcome.SUCCEEDED
    assert s.node_dicts({"01EXEC": 20.0}) == [
        {
            "node_id": 1,
            "type": "materialized_view",
            "query_id": None,
            "name": "dune.team.result_v",
            "execution_id": "01MV",
            "status": "completed",
            "error": None,
            "credits": None,
        },
        {
            "node_id": 2,
            "type": "query",
            "query_id": 100,
            "name": None,
            "execution_id": "01EXEC",
            "status": "completed",
            "error": None,
            "credits": 20.0,
        },
    ]


def test_failed_query_node_names_node_query_and_error():
    s = parse_pipeline_status(
        "P9",
        {
            "status": "failed",
            "error": "node 2 failed",
            "node_executions": [
                view_node(1, "completed"),
                query_node(2, "failed", query_id=777, error="line 1:8: Column 'x' cannot be resolved"),
            ],
        },
    )
    assert s.outcome is RunOutcome.FAILED
    msg = s.failure_message()
    assert "P9" in msg
    assert "node 2 (query 777)" in msg
    assert "line 1:8: Column 'x' cannot be resolved" in msg


def test_failed_view_node_names_the_view():
    s = parse_pipeline_status(
        "P9",
        {
            "status": "failed",
            "node_executions": [
                view_node(1, "failed", name="dune.team.result_broken", error="refresh failed: boom")
            ],
        },
    )
    assert s.outcome is RunOutcome.FAILED
    assert "node 1 (materialized view dune.team.result_broken)" in s.failure_message()
    assert "refresh failed: boom" in s.failure_message()


def test_completed_status_with_a_failed_node_is_a_failure():
    s = parse_pipeline_status(
        "P", {"status": "completed", "node_executions": [query_node(1, "QUERY_STATE_FAILED")]}
    )
    assert s.outcome is RunOutcome.FAILED


def test_pipeline_error_alone_is_a_failure():
    s = parse_pipeline_status("P", {"status": "executing", "error": "quota exceeded", "node_executions": []})
    assert s.outcome is RunOutcome.FAILED
    assert "quota exceeded" in s.failure_message()


def test_unknown_states_keep_waiting_and_warn_once(caplog):
    caplog.set_level(logging.WARNING)
    payload = {"status": "warming_up", "node_executions": [query_node(1, "teleporting")]}
    for _ in range(3):
        assert parse_pipeline_status("P", payload).outcome is RunOutcome.RUNNING
    warnings = [r for r in caplog.records if "Unknown" in r.getMessage()]
    assert len(warnings) == 2  # once for the pipeline state, once for the node state
    assert "warming_up" in warnings[0].getMessage() or "warming_up" in warnings[1].getMessage()


def test_unknown_pipeline_state_with_all_nodes_failed_or_skipped_is_a_failure():
    s = parse_pipeline_status(
        "P",
        {
            "status": "aborted_by_gremlins",
            "node_executions": [query_node(1, "failed"), query_node(2, "skipped")],
        },
    )
    assert s.outcome is RunOutcome.FAILED


def test_skipped_node_is_not_itself_reported_as_failed():
    s = parse_pipeline_status(
        "P",
        {
            "status": "failed",
            "node_executions": [query_node(1, "failed", error="boom"), query_node(2, "skipped")],
        },
    )
    assert [n.node_id for n in s.failed_nodes] == [1]


def test_node_id_field_alias_and_missing_id():
    s = parse_pipeline_status(
        "P",
        {
            "status": "pending",
            "node_executions": [
                {"node_id": 5, "query_execution_status": {"status": "pending", "query_id": 1}},
                {"query_execution_status": {"status": "pending", "query_id": 2}},
            ],
        },
    )
    assert [n.node_id for n in s.nodes] == [5, 1]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([], "expected a JSON object, got list"),
        ("oops", "expected a JSON object, got str"),
        ({}, "has no 'status' field"),
        ({"status": ""}, "has no 'status' field"),
        ({"status": "executing", "node_executions": {"a": 1}}, "'node_executions' is dict"),
        ({"status": "executing", "node_executions": ["x"]}, "pipeline node #0"),
    ],
)
def test_malformed_pipeline_status_is_a_clear_error(payload, expected):
    with pytest.raises(DuneResponseError) as err:
        parse_pipeline_status("P", payload)
    assert expected in str(err.value)


def test_execution_status_failed_with_line_and_column():
    s = parse_execution_status(
        "E1",
        {
            "execution_id": "E1",
            "query_id": 6012998,
            "is_execution_finished": True,
            "state": "QUERY_STATE_FAILED",
            "error": {
                "type": "FAILED_TYPE_EXECUTION_FAILED",
                "message": "line 1:8: Column 'x' cannot be resolved",
                "metadata": {"line": 1, "column": 8},
            },
        },
    )
    assert s.outcome is RunOutcome.FAILED
    assert s.error is not None
    assert s.error.describe() == (
        "FAILED_TYPE_EXECUTION_FAILED: line 1:8: Column 'x' cannot be resolved (line 1, column 8)"
    )


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("QUERY_STATE_PENDING", RunOutcome.RUNNING),
        ("QUERY_STATE_EXECUTING", RunOutcome.RUNNING),
        ("QUERY_STATE_COMPLETED", RunOutcome.SUCCEEDED),
        ("QUERY_STATE_COMPLETED_PARTIAL", RunOutcome.SUCCEEDED),
        ("QUERY_STATE_FAILED", RunOutcome.FAILED),
        ("QUERY_STATE_CANCELLED", RunOutcome.FAILED),
        ("QUERY_STATE_CANCELLED", RunOutcome.FAILED),
        ("QUERY_STATE_EXPIRED", RunOutcome.FAILED),
        ("QUERY_STATE_SOMETHING_NEW", RunOutcome.RUNNING),
    ],
)
def test_execution_states(state, outcome):
    assert parse_execution_status("E", {"state": state}).outcome is outcome
