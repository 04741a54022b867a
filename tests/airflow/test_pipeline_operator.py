"""The pipeline operator and sensor run by real Airflow (dag.test), against a scripted HTTP server."""

from __future__ import annotations

import pytest

from airflow_provider_dune.exceptions import DuneConfigurationError
from airflow_provider_dune.operators.base import RemoteRunFailed
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from airflow_provider_dune.runs.dune import DunePipelineRun
from tests.airflow_runs import run_dag_source
from tests.conftest import TEST_API_KEY
from tests.helpers import FakeTI
from tests.scripted_server import Answer

pytestmark = pytest.mark.usefixtures("airflow_db")

EXECUTE = "/api/v1/pipelines/execute"
STATUS = "/api/v1/pipelines/executions/P1/status"


def node(node_id, status, query_id=5, execution_id=None, error=None):
    body = {"status": status, "query_id": query_id, "execution_id": execution_id or f"E{node_id}"}
    if error:
        body["error"] = error
    return {"id": node_id, "query_execution_status": body}


def view(node_id, status, name="dune.team.result_v", error=None):
    body = {"status": status, "name": name, "execution_id": f"M{node_id}"}
    if error:
        body["error"] = error
    return {"id": node_id, "materialized_view_refresh_status": body}


def status(state, *nodes, error=None):
    body = {"status": state, "node_executions": list(nodes)}
    if error:
        body["error"] = error
    return Answer(body=body)


DAG_TEMPLATE = """
import datetime
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
    DuneRunPipelineOperator(task_id="run", poll_interval=0.05, {args})
"""


def run_operator(dag_id: str, args: str):
    return run_dag_source(DAG_TEMPLATE.format(dag_id=dag_id, args=args), dag_id)


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_pipeline_succeeds_and_hands_ids_downstream(threaded_dune, deferrable):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script(
        "GET",
        STATUS,
        status("pending", view(1, "pending"), node(2, "pending")),
        status("executing", view(1, "completed"), node(2, "executing")),
        status("completed", view(1, "completed"), node(2, "completed")),
    )
    result = run_operator(f"dune_ok_{deferrable}", f"query_id=5, deferrable={deferrable}, defer_after=0")
    assert result.state == "success"
    assert result.xcom("run") == "P1"
    assert result.xcom("run", "pipeline_execution_id") == "P1"
    nodes = result.xcom("run", "node_executions")
    assert [(n["node_id"], n["type"], n["execution_id"], n["status"]) for n in nodes] == [
        (1, "materialized_view", "M1", "completed"),
        (2, "query", "E2", "completed"),
    ]
    assert result.xcom("run", "dune_query_url") == "https://dune.com/queries/5"
    assert threaded_dune.calls("POST", EXECUTE) == 1
    # Nothing after the terminal state, except, deferred, the resuming task's one read of the
    # ended pipeline to price its nodes (the trigger leaves the cost to the worker's budget).
    assert threaded_dune.calls("GET", STATUS) == 3 + deferrable
    assert all(r.headers["X-Dune-Api-Key"] == TEST_API_KEY for r in threaded_dune.requests)
    assert TEST_API_KEY not in repr(result.xcoms)


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_failed_node_fails_the_task(threaded_dune, deferrable):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script(
        "GET",
        STATUS,
        status(
            "failed", view(1, "completed"), node(2, "failed", error="line 1:8: Column 'x' cannot be resolved")
        ),
    )
    threaded_dune.script(
        "GET",
        "/api/v1/execution/E2/status",
        Answer(
            body={
                "execution_id": "E2",
                "state": "QUERY_STATE_FAILED",
                "error": {
                    "type": "FAILED_TYPE_EXECUTION_FAILED",
                    "message": "line 1:8: Column 'x' cannot be resolved",
                    "metadata": {"line": 1, "column": 8},
                },
            }
        ),
    )
    result = run_operator(f"dune_fail_{deferrable}", f"query_id=5, deferrable={deferrable}, defer_after=0")
    assert result.state == "failed"
    assert result.task_states == {"run": "failed"}
    assert result.xcom("run", "pipeline_execution_id") == "P1"
    assert result.xcom("run", "node_executions")[1]["error"] == "line 1:8: Column 'x' cannot be resolved"
    assert threaded_dune.calls("POST", EXECUTE) == 1


def test_validation_error_fails_before_any_request(threaded_dune):
    result = run_operator(
        "dune_bad_nodes", 'nodes=[{"id": 1, "dependencies": [9], "query_execution": {"query_id": 5}}]'
    )
    assert result.state == "failed"
    assert threaded_dune.requests == []


def test_not_waiting_returns_at_submit_with_node_ids(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, status("pending", node(1, "pending")))
    result = run_operator("dune_nowait", "query_id=5, wait_for_termination=False")
    assert result.state == "success"
    assert result.xcom("run") == "P1"
    assert result.xcom("run", "node_executions")[0]["status"] == "pending"
    assert threaded_dune.calls("GET", STATUS) == 1


SENSOR_DAG = """
import datetime
from airflow_provider_dune.sensors.dune import DunePipelineSensor
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
    DunePipelineSensor(
        task_id="wait", pipeline_execution_id="P1", poke_interval=0.05, deferrable={deferrable}, defer_after=0
    )
"""


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_sensor_waits_for_success(threaded_dune, deferrable):
    threaded_dune.script(
        "GET",
        STATUS,
        status("executing", node(1, "executing")),
        status("executing", node(1, "executing")),
        status("completed", node(1, "completed")),
    )
    result = run_dag_source(
        SENSOR_DAG.format(dag_id=f"dune_sensor_{deferrable}", deferrable=deferrable),
        f"dune_sensor_{deferrable}",
    )
    assert result.state == "success"
    assert result.xcom("wait", "node_executions")[0]["status"] == "completed"
    assert threaded_dune.calls("GET", STATUS) == 3 + deferrable  # + the resuming task's cost read


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_sensor_fails_on_failed_view_node(threaded_dune, deferrable):
    threaded_dune.script(
        "GET",
        STATUS,
        status("executing", view(1, "executing")),
        status("failed", view(1, "failed", error="refresh failed")),
    )
    dag_id = f"dune_sensor_fail_{deferrable}"
    result = run_dag_source(SENSOR_DAG.format(dag_id=dag_id, deferrable=deferrable), dag_id)
    assert result.state == "failed"


# --------------------------------------------------------------- messages, straight from execute()


def test_failure_message_names_node_query_error_and_line_column(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script(
        "GET",
        STATUS,
        status(
            "failed", view(1, "completed"), node(2, "failed", query_id=1002, error="line 1:8: Column 'x'")
        ),
    )
    threaded_dune.script(
        "GET",
        "/api/v1/execution/E2/status",
        Answer(
            body={
                "state": "QUERY_STATE_FAILED",
                "error": {
                    "type": "FAILED_TYPE_EXECUTION_FAILED",
                    "message": "line 1:8: Column 'x'",
                    "metadata": {"line": 1, "column": 8},
                },
            }
        ),
    )
    op = DuneRunPipelineOperator(task_id="t", query_id=1002, poll_interval=0.01)
    with pytest.raises(RemoteRunFailed) as err:
        op.execute({"ti": FakeTI()})
    text = str(err.value)
    assert "Dune pipeline P1 failed" in text
    assert "node 2 (query 1002), execution E2 failed: line 1:8: Column 'x'" in text
    assert "node 2: FAILED_TYPE_EXECUTION_FAILED at line 1, column 8" in text
    assert text.count("Column 'x'") == 1  # Dune's message once, not restated


def test_failure_message_for_a_view_node(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script(
        "GET", STATUS, status("failed", view(1, "failed", name="dune.t.result_x", error="boom"))
    )
    threaded_dune.script("GET", "/api/v1/execution/M1/status", Answer(body={"state": "QUERY_STATE_FAILED"}))
    with pytest.raises(
        RemoteRunFailed, match=r"node 1 \(materialized view dune.t.result_x\), execution M1 failed: boom"
    ):
        DuneRunPipelineOperator(task_id="t", query_id=1, poll_interval=0.01).execute({"ti": FakeTI()})


def test_timeout_message_names_pipeline_and_wait(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, status("executing", node(1, "executing")))
    threaded_dune.script("POST", "/api/v1/execution/E1/cancel", Answer(body={"success": True}))
    op = DuneRunPipelineOperator(task_id="t", query_id=1, poll_interval=0.05, timeout=0.2)
    ti = FakeTI()
    with pytest.raises(
        RemoteRunFailed,
        match=r"Timed out after 0s waiting for Dune pipeline P1 \(last status: executing, 0/1 nodes done\)",
    ):
        op.execute({"ti": ti})
    assert ti.pushed["pipeline_execution_id"] == "P1"
    assert threaded_dune.calls("POST", "/api/v1/execution/E1/cancel") == 1  # the timeout cancels the work


def test_timeout_leaves_the_work_running_when_told_to(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, status("executing", node(1, "executing")))
    op = DuneRunPipelineOperator(
        task_id="t", query_id=1, poll_interval=0.05, timeout=0.2, cancel_on_kill=False
    )
    with pytest.raises(RemoteRunFailed, match="Timed out"):
        op.execute({"ti": FakeTI()})
    assert threaded_dune.calls("POST", "/api/v1/execution/E1/cancel") == 0


def test_unknown_states_do_not_crash_the_operator(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script(
        "GET",
        STATUS,
        status("thinking", node(1, "QUERY_STATE_DREAMING")),
        status("completed", node(1, "completed")),
    )
    assert (
        DuneRunPipelineOperator(task_id="t", query_id=1, poll_interval=0.01).execute({"ti": FakeTI()}) == "P1"
    )


def test_deferral_carries_only_ids_and_intervals(threaded_dune):
    from airflow.providers.common.compat.sdk import TaskDeferred

    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, status("executing", node(1, "executing")))
    ti = FakeTI()
    op = DuneRunPipelineOperator(
        task_id="t", query_id=1, deferrable=True, defer_after=0, poll_interval=7, timeout=60, max_credits=40
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti})
    assert ti.pushed["pipeline_execution_id"] == "P1"  # pushed before deferring
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["max_credits"] == 40  # the budget goes on in the triggerer
    assert set(kwargs) == {
        "pipeline_execution_id",
        "dune_conn_id",
        "max_credits",
        "poll_interval",
        "end_time",
        "fire_not_before",
        "cancel_on_kill",
    }
    assert kwargs["poll_interval"] == 7
    assert TEST_API_KEY not in repr(kwargs)
    assert deferred.value.method_name == "execute_complete"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {
                "status": "error",
                "pipeline_execution_id": "P1",
                "node_executions": [],
                "message": "HTTP 401 bad",
            },
            "HTTP 401 bad",
        ),
        (
            {
                "status": "timeout",
                "pipeline_execution_id": "P1",
                "node_executions": [],
                "message": "Timed out after 9s",
            },
            "Timed out after 9s",
        ),
    ],
)
def test_execute_complete_raises_the_event_message(dune_conn, event, expected):
    with pytest.raises(RemoteRunFailed, match=expected):
        # No cancel: the host only mocks answer (the timeout's cancel is tested in test_deferral.py).
        DuneRunPipelineOperator(task_id="t", query_id=1, cancel_on_kill=False).execute_complete(
            {"ti": FakeTI()}, event
        )


def test_execute_complete_success_returns_pipeline_id(dune_conn):
    ti = FakeTI()
    nodes = [
        {
            "node_id": 1,
            "type": "query",
            "query_id": 1,
            "name": None,
            "execution_id": "E",
            "status": "completed",
            "error": None,
        }
    ]
    event = {"status": "success", "pipeline_execution_id": "P1", "node_executions": nodes, "message": "ok"}
    assert DuneRunPipelineOperator(task_id="t", query_id=1).execute_complete({"ti": ti}, event) == "P1"
    assert ti.pushed["node_executions"] == nodes


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "exactly one of query_id"),
        ({"query_id": 1, "nodes": []}, "exactly one of query_id"),
        ({"query_id": 1, "poll_interval": 0}, "poll_interval must be a positive, finite number"),
        ({"query_id": 1, "timeout": -1}, "timeout must be a positive, finite number"),
    ],
)
def test_operator_arguments_checked_when_the_dag_is_parsed(kwargs, expected):
    with pytest.raises(DuneConfigurationError, match=expected):
        DuneRunPipelineOperator(task_id="t", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"query_id": 1, "performance": "turbo"}, "performance is 'turbo'"),
        ({"nodes": [{"id": 1, "dependencies": [2], "query_execution": {"query_id": 1}}]}, "depends on [2]"),
        (
            {"nodes": [{"id": 1, "dependencies": [1], "query_execution": {"query_id": 1}}]},
            "depends on itself",
        ),
        (
            {
                "nodes": '[{"id": 1, "query_execution": {"query_id": 1}}, '
                '{"id": 1, "query_execution": {"query_id": 2}}]'
            },
            "used more than once",
        ),
        ({"nodes": "{{ not json"}, "not JSON"),
    ],
)
def test_rendered_arguments_checked_before_any_request(threaded_dune, kwargs, expected):
    with pytest.raises(DuneConfigurationError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        DuneRunPipelineOperator(task_id="t", **kwargs).execute({"ti": FakeTI()})
    assert threaded_dune.requests == []


def test_on_kill_cancels_running_nodes(threaded_dune):
    threaded_dune.script(
        "GET",
        STATUS,
        status(
            "executing", node(1, "completed"), node(2, "executing"), node(3, "pending", execution_id="E3")
        ),
    )
    threaded_dune.script("POST", "/api/v1/execution/E2/cancel", Answer(body={"success": True}))
    threaded_dune.script("POST", "/api/v1/execution/E3/cancel", Answer(body={"success": True}))
    op = DuneRunPipelineOperator(task_id="t", query_id=1)
    op._remote_run = DunePipelineRun(op.hook, "P1")
    op.on_kill()
    assert threaded_dune.calls("POST", "/api/v1/execution/E1/cancel") == 0
    assert threaded_dune.calls("POST", "/api/v1/execution/E2/cancel") == 1
    assert threaded_dune.calls("POST", "/api/v1/execution/E3/cancel") == 1


def test_on_kill_can_be_switched_off(threaded_dune):
    op = DuneRunPipelineOperator(task_id="t", query_id=1, cancel_on_kill=False)
    op._remote_run = DunePipelineRun(op.hook, "P1")
    op.on_kill()
    assert threaded_dune.requests == []
