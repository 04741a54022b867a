"""Nothing lost, nothing doubled: a retried task reconnects, a killed one cancels."""

from __future__ import annotations

import json

import pytest

from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from airflow_provider_dune.operators.resume import STORE_KEY, resume_store_for
from airflow_provider_dune.triggers.dune import DunePipelineTrigger
from tests.helpers import FakeTI
from tests.scripted_server import Answer

EXECUTE = "/api/v1/pipelines/execute"
STATUS_OLD = "/api/v1/pipelines/executions/OLD/status"
STATUS_NEW = "/api/v1/pipelines/executions/NEW/status"


def status(state, node_state, execution_id="E1"):
    return Answer(
        body={
            "status": state,
            "node_executions": [
                {
                    "id": 1,
                    "query_execution_status": {
                        "status": node_state,
                        "query_id": 5,
                        "execution_id": execution_id,
                    },
                }
            ],
        }
    )


class FakeStateStore:
    """Airflow 3.3's task_state_store, as an operator sees it in its context."""

    def __init__(self, initial=None):
        self.data = dict(initial or {})

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = json.loads(json.dumps(value))

    def delete(self, key):
        self.data.pop(key, None)


def context_with(store):
    return {"ti": FakeTI(), "task_state_store": store}


def test_a_retry_reconnects_to_the_running_pipeline_instead_of_submitting(threaded_dune):
    store = FakeStateStore({STORE_KEY: {"pipeline_execution_id": "OLD"}})
    threaded_dune.script(
        "GET", STATUS_OLD, status("executing", "executing"), status("completed", "completed")
    )
    context = context_with(store)
    result = DuneRunPipelineOperator(task_id="t", query_id=5, poll_interval=0.01).execute(context)
    assert result == "OLD"
    assert threaded_dune.calls("POST", EXECUTE) == 0
    assert context["ti"].pushed["pipeline_execution_id"] == "OLD"
    assert context["ti"].pushed["dune_query_url"] == "https://dune.com/queries/5"  # link works on the retry
    assert STORE_KEY not in store.data  # forgotten once the wait ended


def test_a_retry_after_the_pipeline_finished_returns_without_submitting(threaded_dune):
    store = FakeStateStore({STORE_KEY: {"pipeline_execution_id": "OLD"}})
    threaded_dune.script("GET", STATUS_OLD, status("completed", "completed"))
    context = context_with(store)
    assert DuneRunPipelineOperator(task_id="t", query_id=5, poll_interval=0.01).execute(context) == "OLD"
    assert threaded_dune.calls("POST", EXECUTE) == 0
    assert threaded_dune.calls("GET", STATUS_OLD) == 1
    assert context["ti"].pushed["node_executions"][0]["status"] == "completed"


def test_a_retry_after_a_failed_pipeline_submits_anew(threaded_dune):
    store = FakeStateStore({STORE_KEY: {"pipeline_execution_id": "OLD"}})
    threaded_dune.script("GET", STATUS_OLD, status("failed", "failed"))
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "NEW"}))
    threaded_dune.script("GET", STATUS_NEW, status("completed", "completed"))
    assert (
        DuneRunPipelineOperator(task_id="t", query_id=5, poll_interval=0.01).execute(context_with(store))
        == "NEW"
    )
    assert threaded_dune.calls("POST", EXECUTE) == 1


def test_the_id_is_recorded_before_waiting(threaded_dune):
    store = FakeStateStore()
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "NEW"}))
    seen = []
    threaded_dune.script("GET", STATUS_NEW, status("completed", "completed"))
    op = DuneRunPipelineOperator(task_id="t", query_id=5, poll_interval=0.01)
    original = op.hook.get_pipeline_status

    def recording(pid):
        seen.append(dict(store.data))
        return original(pid)

    op.hook.get_pipeline_status = recording  # type: ignore[method-assign]
    op.execute(context_with(store))
    assert seen[0] == {STORE_KEY: {"pipeline_execution_id": "NEW"}}
    assert store.data == {}


def test_without_a_task_state_store_an_airflow_variable_holds_the_id(monkeypatch):
    from airflow.providers.common.compat import sdk

    variables = {}
    monkeypatch.setattr(
        sdk.Variable,
        "get",
        classmethod(lambda cls, k, default=None, deserialize_json=False: variables.get(k, default)),
    )
    monkeypatch.setattr(sdk.Variable, "set", classmethod(lambda cls, k, v, **kw: variables.__setitem__(k, v)))
    monkeypatch.setattr(sdk.Variable, "delete", classmethod(lambda cls, k: variables.pop(k, None)))

    class TI(FakeTI):
        dag_id, task_id, run_id, map_index = "d", "t", "r1", 3

    store = resume_store_for({"ti": TI()})
    store.put({"pipeline_execution_id": "P"})
    assert variables == {f"{STORE_KEY}.d.t.r1.3": {"pipeline_execution_id": "P"}}
    assert store.get() == {"pipeline_execution_id": "P"}
    store.forget()
    assert variables == {}


async def test_killing_a_deferred_task_cancels_the_running_nodes(scripted_dune):
    scripted_dune.script(
        "GET",
        "/api/v1/pipelines/executions/P1/status",
        Answer(
            body={
                "status": "executing",
                "node_executions": [
                    {
                        "id": 1,
                        "query_execution_status": {
                            "status": "completed",
                            "query_id": 1,
                            "execution_id": "E1",
                        },
                    },
                    {
                        "id": 2,
                        "query_execution_status": {
                            "status": "executing",
                            "query_id": 2,
                            "execution_id": "E2",
                        },
                    },
                ],
            }
        ),
    )
    scripted_dune.script("POST", "/api/v1/execution/E2/cancel", Answer(body={"success": True}))
    await DunePipelineTrigger("P1").on_kill()
    assert scripted_dune.calls("POST", "/api/v1/execution/E2/cancel") == 1
    assert scripted_dune.calls("POST", "/api/v1/execution/E1/cancel") == 0


async def test_a_trigger_told_not_to_cancel_leaves_the_work_alone(scripted_dune):
    await DunePipelineTrigger("P1", cancel_on_kill=False).on_kill()
    assert scripted_dune.requests == []


def test_the_sensor_trigger_never_cancels_a_pipeline_it_did_not_start(threaded_dune):
    from airflow_provider_dune.sensors.dune import DunePipelineSensor

    trigger = DunePipelineSensor(task_id="s", pipeline_execution_id="P1").make_trigger(1, None)
    assert trigger.cancel_on_kill is False


@pytest.mark.parametrize(
    ("extras", "expected"),
    [
        ({"timeout": 5, "retry_limit": 2, "retry_delay": 0.1, "retry_max_seconds": 9}, (5, 2, 0.1, 9)),
        ({}, (30, 6, 1.0, 300)),
        ({"extra__dune__retry_limit": 3, "extra__dune__timeout": 7}, (7, 3, 1.0, 300)),
    ],
)
def test_retry_settings_come_from_connection_extras(monkeypatch, extras, expected):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUNE_DEFAULT",
        json.dumps({"conn_type": "dune", "password": "k", "host": "https://h/api", "extra": extras}),
    )
    hook = DuneHook()
    hook._credentials()
    policy = hook.retry_policy
    assert (hook.timeout, policy.max_attempts, policy.base_delay, policy.max_total_seconds) == expected


def test_hook_arguments_win_over_extras(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUNE_DEFAULT",
        json.dumps(
            {"conn_type": "dune", "password": "k", "host": "https://h/api", "extra": {"retry_limit": 9}}
        ),
    )
    hook = DuneHook(retry_limit=2)
    hook._credentials()
    assert hook.retry_policy.max_attempts == 2


def test_a_wait_ended_by_an_unreadable_status_keeps_the_record_for_the_retry(dune_conn):
    from airflow_provider_dune.operators.base import RemoteRunFailed

    store = FakeStateStore({STORE_KEY: {"pipeline_execution_id": "P1"}})
    event = {
        "status": "error",
        "pipeline_execution_id": "P1",
        "node_executions": [],
        "message": "Dune API GET ... failed (HTTP 500)",
        "unreadable": True,
    }
    with pytest.raises(RemoteRunFailed, match="HTTP 500"):
        DuneRunPipelineOperator(task_id="t", query_id=5).execute_complete(context_with(store), event)
    assert store.data == {STORE_KEY: {"pipeline_execution_id": "P1"}}


def test_a_wait_that_saw_the_run_fail_forgets_the_record(dune_conn):
    from airflow_provider_dune.operators.base import RemoteRunFailed

    store = FakeStateStore({STORE_KEY: {"pipeline_execution_id": "P1"}})
    event = {"status": "error", "pipeline_execution_id": "P1", "node_executions": [], "message": "failed"}
    with pytest.raises(RemoteRunFailed):
        DuneRunPipelineOperator(task_id="t", query_id=5).execute_complete(context_with(store), event)
    assert store.data == {}


async def test_a_failed_cancel_from_the_triggerer_is_logged_not_raised(scripted_dune):
    scripted_dune.script(
        "GET", "/api/v1/pipelines/executions/P1/status", Answer(404, {"error": "Object not found"})
    )
    await DunePipelineTrigger("P1").on_kill()  # must not raise
    assert scripted_dune.calls("GET", "/api/v1/pipelines/executions/P1/status") == 1
