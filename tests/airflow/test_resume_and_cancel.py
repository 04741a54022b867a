"""Nothing lost, nothing doubled: a retried task reconnects, a killed one cancels."""

from __future__ import annotations

import json

import pytest

from airflow_provider_dune.exceptions import DuneError
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.hooks.retry import RetryPolicy
from airflow_provider_dune.operators.base import RemoteRunFailed, SubmissionNotRecorded
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from airflow_provider_dune.operators.resume import MAX_VARIABLE_KEY, STORE_KEY, journal_for
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


def recorded(**ids):
    """What a try that got as far as the ids left in the store."""
    return {STORE_KEY: {"ids": ids, "since": "2026-12-01T00:00:00+00:00"}}


WAIT = {"poll_interval": 1.0, "end_time": None, "fire_not_before": None}


def test_a_retry_reconnects_to_the_running_pipeline_instead_of_submitting(threaded_dune):
    store = FakeStateStore(recorded(pipeline_execution_id="OLD"))
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


def test_a_record_written_by_0_1_0_is_still_understood(threaded_dune):
    store = FakeStateStore({STORE_KEY: {"pipeline_execution_id": "OLD"}})
    threaded_dune.script("GET", STATUS_OLD, status("completed", "completed"))
    assert DuneRunPipelineOperator(task_id="t", query_id=5).execute(context_with(store)) == "OLD"
    assert threaded_dune.calls("POST", EXECUTE) == 0


def test_a_retry_after_the_pipeline_finished_returns_without_submitting(threaded_dune):
    store = FakeStateStore(recorded(pipeline_execution_id="OLD"))
    threaded_dune.script("GET", STATUS_OLD, status("completed", "completed"))
    context = context_with(store)
    assert DuneRunPipelineOperator(task_id="t", query_id=5, poll_interval=0.01).execute(context) == "OLD"
    assert threaded_dune.calls("POST", EXECUTE) == 0
    assert threaded_dune.calls("GET", STATUS_OLD) == 1
    assert context["ti"].pushed["node_executions"][0]["status"] == "completed"


def test_a_retry_after_a_failed_pipeline_submits_anew(threaded_dune):
    store = FakeStateStore(recorded(pipeline_execution_id="OLD"))
    threaded_dune.script("GET", STATUS_OLD, status("failed", "failed"))
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "NEW"}))
    threaded_dune.script("GET", STATUS_NEW, status("completed", "completed"))
    assert (
        DuneRunPipelineOperator(task_id="t", query_id=5, poll_interval=0.01).execute(context_with(store))
        == "NEW"
    )
    assert threaded_dune.calls("POST", EXECUTE) == 1


@pytest.mark.parametrize(
    "answer",
    [
        Answer(503, {"error": "down"}),
        Answer(401, {"error": "invalid API Key"}),
        Answer(429, {"error": "slow"}),
    ],
    ids=["outage", "rotated key", "429 storm"],
)
def test_a_retry_that_cannot_read_the_earlier_run_fails_and_keeps_the_record(threaded_dune, answer):
    store = FakeStateStore(recorded(pipeline_execution_id="OLD"))
    threaded_dune.script("GET", STATUS_OLD, answer)
    op = DuneRunPipelineOperator(task_id="t", query_id=5)
    op.hook._credentials()  # read the connection first: it sets the retry policy
    op.hook.retry_policy = RetryPolicy(max_attempts=2, base_delay=0.01)
    with pytest.raises(RemoteRunFailed, match="may still be running, so this try does not submit another"):
        op.execute(context_with(store))
    assert threaded_dune.calls("POST", EXECUTE) == 0
    assert store.data == recorded(pipeline_execution_id="OLD")


def test_the_intent_and_then_the_id_are_recorded_before_waiting(threaded_dune):
    store = FakeStateStore()
    seen = []
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "NEW"}))
    threaded_dune.script("GET", STATUS_NEW, status("completed", "completed"))
    op = DuneRunPipelineOperator(task_id="t", query_id=5, poll_interval=0.01)
    execute_pipeline, get_status = op.hook.execute_pipeline, op.hook.get_pipeline_status

    def submitting(**kwargs):
        seen.append(("POST", dict(store.data[STORE_KEY])))
        return execute_pipeline(**kwargs)

    def reading(pid):
        seen.append(("GET", dict(store.data[STORE_KEY])))
        return get_status(pid)

    op.hook.execute_pipeline = submitting  # type: ignore[method-assign]
    op.hook.get_pipeline_status = reading  # type: ignore[method-assign]
    op.execute(context_with(store))
    assert seen[0][0] == "POST" and seen[0][1]["ids"] is None  # the intent, before the request
    assert seen[1][0] == "GET" and seen[1][1]["ids"] == {"pipeline_execution_id": "NEW"}
    assert store.data == {}


@pytest.mark.parametrize(
    "lost",
    [Answer(502, {"error": "bad gateway"}), Answer(body="not json")],
    ids=["5xx after sending", "garbled answer"],
)
def test_a_submission_whose_answer_was_lost_is_never_sent_again(threaded_dune, lost):
    store = FakeStateStore()
    threaded_dune.script("POST", EXECUTE, lost)
    with pytest.raises(DuneError, match="may have started"):
        DuneRunPipelineOperator(task_id="t", query_id=5).execute(context_with(store))
    assert store.data[STORE_KEY]["ids"] is None  # the intent stays
    # The retry: Airflow runs the task again with the same store.
    with pytest.raises(SubmissionNotRecorded, match="does not submit again") as refused:
        DuneRunPipelineOperator(task_id="t", query_id=5).execute(context_with(store))
    assert "delete the task state store key" in str(refused.value)
    assert threaded_dune.calls("POST", EXECUTE) == 1


def test_a_submission_refused_before_any_work_leaves_no_record(threaded_dune):
    store = FakeStateStore()
    threaded_dune.script("POST", EXECUTE, Answer(400, {"error": "Query 5 does not exist"}))
    with pytest.raises(DuneError, match="does not exist"):
        DuneRunPipelineOperator(task_id="t", query_id=5).execute(context_with(store))
    assert store.data == {}


def test_a_run_that_cannot_be_recorded_is_cancelled(threaded_dune):
    class BrokenAfterIntent(FakeStateStore):
        def set(self, key, value):
            if value["ids"] is not None:
                raise RuntimeError("metadata database unreachable")
            super().set(key, value)

    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "NEW"}))
    threaded_dune.script("GET", STATUS_NEW, status("executing", "executing", execution_id="E9"))
    threaded_dune.script("POST", "/api/v1/execution/E9/cancel", Answer(body={"success": True}))
    op = DuneRunPipelineOperator(task_id="t", query_id=5, cancel_on_kill=False)
    with pytest.raises(RuntimeError, match="unreachable"):
        op.execute(context_with(BrokenAfterIntent()))
    # Cancelled even with cancel_on_kill=False: unrecorded, it would run unseen and a retry would
    # start another.
    assert threaded_dune.calls("POST", "/api/v1/execution/E9/cancel") == 1


def test_durable_false_records_nothing_and_every_try_submits(threaded_dune):
    store = FakeStateStore(recorded(pipeline_execution_id="OLD"))
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "NEW"}))
    threaded_dune.script("GET", STATUS_NEW, status("completed", "completed"))
    op = DuneRunPipelineOperator(task_id="t", query_id=5, durable=False)
    assert op.execute(context_with(store)) == "NEW"
    assert threaded_dune.calls("GET", STATUS_OLD) == 0
    assert store.data == recorded(pipeline_execution_id="OLD")  # untouched


@pytest.fixture
def variables(monkeypatch):
    from airflow.providers.common.compat import sdk

    stored = {}
    monkeypatch.setattr(
        sdk.Variable,
        "get",
        classmethod(lambda cls, k, default=None, deserialize_json=False: stored.get(k, default)),
    )
    monkeypatch.setattr(sdk.Variable, "set", classmethod(lambda cls, k, v, **kw: stored.__setitem__(k, v)))
    monkeypatch.setattr(sdk.Variable, "delete", classmethod(lambda cls, k: stored.pop(k, None)))
    return stored


def test_without_a_task_state_store_an_airflow_variable_holds_the_record(variables):
    class TI(FakeTI):
        dag_id, task_id, run_id, map_index = "d", "t", "r1", 3

    journal = journal_for({"ti": TI()})
    journal.started({"pipeline_execution_id": "P"})
    (name,) = variables
    assert name == f"{STORE_KEY}.d.t.r1.3"
    assert variables[name]["ids"] == {"pipeline_execution_id": "P"}
    assert journal.get().ids == {"pipeline_execution_id": "P"}
    journal.forget()
    assert variables == {}


def test_the_variable_name_stays_within_airflows_250_characters(variables):
    class TI(FakeTI):
        dag_id, task_id, run_id, map_index = "d" * 200, "t" * 200, "manual__2026-12-01T00:00:00+00:00", 12

    journal_for({"ti": TI()}).submitting()
    (name,) = variables
    assert len(name) <= MAX_VARIABLE_KEY
    assert name.startswith(f"{STORE_KEY}.ddd")
    # A different task instance never lands on the same name.
    TI.map_index = 13
    journal_for({"ti": TI()}).submitting()
    assert len(variables) == 2


def test_the_sensor_trigger_never_cancels_a_pipeline_it_did_not_start(threaded_dune):
    from airflow_provider_dune.sensors.dune import DunePipelineSensor

    trigger = DunePipelineSensor(task_id="s", pipeline_execution_id="P1").make_trigger(WAIT)
    assert trigger.cancel_on_kill is False


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

    store = FakeStateStore(recorded(pipeline_execution_id="P1"))
    event = {
        "status": "error",
        "pipeline_execution_id": "P1",
        "node_executions": [],
        "message": "Dune API GET ... failed (HTTP 500)",
        "unreadable": True,
    }
    with pytest.raises(RemoteRunFailed, match="HTTP 500"):
        DuneRunPipelineOperator(task_id="t", query_id=5).execute_complete(context_with(store), event)
    assert store.data == recorded(pipeline_execution_id="P1")


def test_a_wait_that_saw_the_run_fail_forgets_the_record(dune_conn):
    from airflow_provider_dune.operators.base import RemoteRunFailed

    store = FakeStateStore(recorded(pipeline_execution_id="P1"))
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


THREE_NODES = [
    {"id": 1, "query_execution": {"query_id": 10}},
    {"id": 2, "dependencies": [1], "query_execution": {"query_id": 20}},
    {"id": 3, "dependencies": [2], "query_execution": {"query_id": 30}},
]


def three_node_status(*states):
    return Answer(
        body={
            "status": "completed",
            "error": "node 2 failed",
            "node_executions": [
                {
                    "id": i,
                    "query_execution_status": {"status": s, "query_id": i * 10, "execution_id": f"E{i}"},
                }
                for i, s in enumerate(states, start=1)
            ],
        }
    )


@pytest.mark.parametrize("rerun_failed_only", [True, False])
def test_a_retry_after_a_failed_pipeline_reruns_only_what_did_not_succeed(threaded_dune, rerun_failed_only):
    store = FakeStateStore(recorded(pipeline_execution_id="OLD"))
    threaded_dune.script("GET", STATUS_OLD, three_node_status("completed", "failed", "skipped"))
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "NEW"}))
    threaded_dune.script("GET", STATUS_NEW, status("completed", "completed"))
    ti = FakeTI()
    op = DuneRunPipelineOperator(
        task_id="t", nodes=THREE_NODES, poll_interval=0.01, rerun_failed_only=rerun_failed_only
    )
    assert op.execute({"ti": ti, "task_state_store": store}) == "NEW"
    sent = json.loads(next(r.body for r in threaded_dune.requests if r.path == EXECUTE))
    ids = [(n["id"], n.get("dependencies")) for n in sent["pipeline"]["nodes"]]
    if rerun_failed_only:
        assert ids == [(2, []), (3, [2])]
        assert ti.pushed["skipped_nodes"] == ["node 1 (query 10, execution E1)"]
    else:
        assert ids == [(1, []), (2, [1]), (3, [2])]
        assert "skipped_nodes" not in ti.pushed


class RetryingTI(FakeTI):
    def __init__(self, try_number, max_tries):
        super().__init__()
        self.try_number, self.max_tries = try_number, max_tries


@pytest.mark.parametrize(("try_number", "kept"), [(1, True), (2, False)], ids=["retry follows", "last try"])
def test_a_failed_pipeline_keeps_its_record_only_when_a_retry_follows(threaded_dune, try_number, kept):
    store = FakeStateStore()
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "NEW"}))
    threaded_dune.script("GET", STATUS_NEW, three_node_status("completed", "failed", "skipped"))
    threaded_dune.script(
        "GET",
        "/api/v1/execution/E2/status",
        Answer(body={"execution_id": "E2", "state": "QUERY_STATE_FAILED"}),
    )
    op = DuneRunPipelineOperator(task_id="t", nodes=THREE_NODES, poll_interval=0.01)
    with pytest.raises(RemoteRunFailed):
        op.execute({"ti": RetryingTI(try_number, max_tries=1), "task_state_store": store})
    record = store.data.get(STORE_KEY)
    assert (record["ids"] if record else None) == ({"pipeline_execution_id": "NEW"} if kept else None)
