"""Handing a wait to the triggerer: the worker's short wait, the event hold, and the bounds.

The scheduler race the hold guards (apache/airflow #66374, #67287, #71580, #72716) needs a real
scheduler; tests/scale/test_quick_deferrals.py shows it on real processes. These tests pin down
the pieces, on every operator and sensor base.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_dune.operators.base import DEFAULT_TIMEOUT, RemoteRunFailed
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator, DuneRunQueryOperator
from airflow_provider_dune.operators.resume import STORE_KEY
from airflow_provider_dune.sensors.dune import DunePipelineSensor
from airflow_provider_dune.triggers import base as trigger_base
from airflow_provider_dune.triggers.dune import DunePipelineTrigger
from tests.helpers import FakeTI
from tests.scripted_server import Answer

EXECUTE = "/api/v1/pipelines/execute"
STATUS = "/api/v1/pipelines/executions/P1/status"


def pipeline(state, node_state):
    node = {"id": 1, "query_execution_status": {"status": node_state, "query_id": 5, "execution_id": "E1"}}
    return Answer(body={"status": state, "node_executions": [node]})


RUNNING = pipeline("executing", "executing")
DONE = pipeline("completed", "completed")


class FakeStateStore:
    def __init__(self, initial=None):
        self.data = dict(initial or {})

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value

    def delete(self, key):
        self.data.pop(key, None)


class StartedTI(FakeTI):
    def __init__(self, started_ago: float = 0.0) -> None:
        super().__init__()
        self.start_date = datetime.now(timezone.utc) - timedelta(seconds=started_ago)


@pytest.fixture
def hold(monkeypatch):
    """The event hold as a deployment sets it: ``[dune] deferral_event_hold``."""
    monkeypatch.setenv("AIRFLOW__DUNE__DEFERRAL_EVENT_HOLD", "7")
    return 7.0


# ------------------------------------------------------------------ the worker's short wait


def test_a_run_that_ends_within_defer_after_finishes_in_the_worker(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, RUNNING, DONE)
    ti = FakeTI()
    op = DuneRunPipelineOperator(task_id="t", query_id=5, deferrable=True, defer_after=5, poll_interval=30)
    assert op.execute({"ti": ti}) == "P1"  # no TaskDeferred
    assert ti.pushed["node_executions"][0]["status"] == "completed"
    # Read about once a second in the worker, not at the 30 s poll_interval.
    assert threaded_dune.calls("GET", STATUS) == 2


def test_a_run_still_going_after_defer_after_defers_with_the_hold(threaded_dune, hold):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, RUNNING)
    op = DuneRunPipelineOperator(task_id="t", query_id=5, deferrable=True, defer_after=0.3, poll_interval=9)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})
    trigger = deferred.value.trigger
    assert threaded_dune.calls("GET", STATUS) >= 2  # it did wait in the worker first
    assert before + hold <= trigger.fire_not_before <= time.time() + hold
    assert trigger.poll_interval == 9
    assert trigger.serialize()[1]["fire_not_before"] == trigger.fire_not_before  # survives a restart


def test_defer_after_zero_reads_once_then_defers(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, RUNNING)
    with pytest.raises(TaskDeferred):
        DuneRunPipelineOperator(task_id="t", query_id=5, deferrable=True, defer_after=0).execute(
            {"ti": FakeTI()}
        )
    assert threaded_dune.calls("GET", STATUS) == 1


def test_a_sensor_whose_run_ends_within_defer_after_never_defers(threaded_dune):
    threaded_dune.script("GET", STATUS, RUNNING, DONE)
    ti = FakeTI()
    sensor = DunePipelineSensor(
        task_id="s", pipeline_execution_id="P1", deferrable=True, defer_after=5, poke_interval=30
    )
    sensor.execute({"ti": ti})
    assert ti.pushed["node_executions"][0]["status"] == "completed"


def test_a_sensor_defers_with_the_hold_and_its_bounds(threaded_dune, hold):
    threaded_dune.script("GET", STATUS, RUNNING)
    sensor = DunePipelineSensor(
        task_id="s",
        pipeline_execution_id="P1",
        deferrable=True,
        defer_after=0,
        timeout=3600,
        execution_timeout=timedelta(minutes=10),
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": StartedTI()})
    trigger = deferred.value.trigger
    assert trigger.fire_not_before == pytest.approx(time.time() + hold, abs=2)
    assert trigger.end_time == pytest.approx(time.time() + 540, abs=2)  # execution_timeout - 60 s
    assert deferred.value.timeout.total_seconds() == pytest.approx(600, abs=2)


# ------------------------------------------------------------------ the trigger's hold


async def test_the_trigger_holds_an_early_end_event_until_fire_not_before(scripted_dune, monkeypatch):
    scripted_dune.script("GET", STATUS, DONE)
    slept = []
    real_sleep = asyncio.sleep

    async def recording_sleep(seconds):
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(trigger_base, "asyncio", SimpleNamespace(sleep=recording_sleep))
    trigger = DunePipelineTrigger("P1", poll_interval=1, fire_not_before=time.time() + 30)
    events = [event async for event in trigger.run()]
    assert events[0].payload["status"] == "success"
    assert len(events) == 1
    assert slept and slept[-1] == pytest.approx(30, abs=2)


async def test_a_trigger_past_its_hold_fires_at_once(scripted_dune, monkeypatch):
    scripted_dune.script("GET", STATUS, DONE)
    slept = []
    monkeypatch.setattr(trigger_base, "asyncio", SimpleNamespace(sleep=slept.append))
    trigger = DunePipelineTrigger("P1", poll_interval=1, fire_not_before=time.time() - 1)
    events = [event async for event in trigger.run()]
    assert events[0].payload["status"] == "success"
    assert slept == []


# ------------------------------------------------------------------ bounds


def test_execution_timeout_bounds_the_deferred_wait(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, RUNNING)
    op = DuneRunPipelineOperator(
        task_id="t",
        query_id=5,
        deferrable=True,
        defer_after=0,
        timeout=None,
        execution_timeout=timedelta(minutes=20),
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": StartedTI(started_ago=300)})
    # The try started 5 minutes ago: 15 minutes remain, and the trigger ends 1 minute before them.
    assert deferred.value.timeout.total_seconds() == pytest.approx(900, abs=2)
    assert deferred.value.trigger.end_time == pytest.approx(time.time() + 14 * 60, abs=2)


def test_the_earlier_of_timeout_and_execution_timeout_wins(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, RUNNING)
    op = DuneRunPipelineOperator(
        task_id="t",
        query_id=5,
        deferrable=True,
        defer_after=0,
        timeout=120,
        execution_timeout=timedelta(hours=1),
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": StartedTI()})
    assert deferred.value.trigger.end_time == pytest.approx(time.time() + 120, abs=2)
    assert deferred.value.timeout.total_seconds() == pytest.approx(3600, abs=2)


def test_a_timeout_event_cancels_the_run_and_says_why(threaded_dune):
    threaded_dune.script("GET", STATUS, RUNNING)
    threaded_dune.script("POST", "/api/v1/execution/E1/cancel", Answer(body={"success": True}))
    event = {
        "status": "timeout",
        "pipeline_execution_id": "P1",
        "node_executions": [],
        "message": "Timed out after 540s waiting for Dune pipeline P1 (last status: executing).",
    }
    op = DuneRunPipelineOperator(task_id="t", query_id=5, execution_timeout=timedelta(minutes=10))
    with pytest.raises(RemoteRunFailed, match="Timed out after 540s waiting for Dune pipeline P1"):
        op.execute_complete({"ti": FakeTI()}, event)
    assert threaded_dune.calls("POST", "/api/v1/execution/E1/cancel") == 1


def test_operators_wait_a_day_by_default_and_warn_when_unbounded(threaded_dune, capfd):
    assert DuneRunPipelineOperator(task_id="t", query_id=5).timeout == DEFAULT_TIMEOUT == 24 * 3600
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, DONE)
    DuneRunPipelineOperator(task_id="t", query_id=5, timeout=None).execute({"ti": FakeTI()})
    assert "This wait has no end" in "".join(capfd.readouterr())
    DuneRunPipelineOperator(
        task_id="u", query_id=5, timeout=None, execution_timeout=timedelta(hours=1)
    ).execute({"ti": FakeTI()})
    assert "This wait has no end" not in "".join(capfd.readouterr())


@pytest.mark.parametrize("defer_after", [-1, -0.5])
def test_defer_after_must_not_be_negative(defer_after):
    with pytest.raises(ValueError, match="defer_after"):
        DuneRunPipelineOperator(task_id="t", query_id=5, defer_after=defer_after)
    with pytest.raises(ValueError, match="defer_after"):
        DunePipelineSensor(task_id="s", pipeline_execution_id="P1", defer_after=defer_after)


# ------------------------------------------------------------------ the record outlives post-success work


QUERY_EXECUTE = "/api/v1/query/5/execute"
EXECUTION_STATUS = "/api/v1/execution/E7/status"
RESULTS = "/api/v1/execution/E7/results"


def test_a_result_too_big_for_xcom_keeps_the_record_so_the_retry_does_not_pay_again(threaded_dune):
    threaded_dune.script(
        "POST", QUERY_EXECUTE, Answer(body={"execution_id": "E7", "state": "QUERY_STATE_PENDING"})
    )
    threaded_dune.script(
        "GET", EXECUTION_STATUS, Answer(body={"state": "QUERY_STATE_COMPLETED", "query_id": 5})
    )
    threaded_dune.script(
        "GET",
        RESULTS,
        Answer(
            body={
                "execution_id": "E7",
                "state": "QUERY_STATE_COMPLETED",
                "result": {"rows": [{"n": 1}, {"n": 2}], "metadata": {"column_names": ["n"]}},
            }
        ),
    )
    store = FakeStateStore()

    def attempt():
        op = DuneRunQueryOperator(task_id="q", query_id=5, push_rows_to_xcom=True, max_xcom_rows=1)
        with pytest.raises(Exception, match="max_xcom_rows"):
            op.execute({"ti": FakeTI(), "task_state_store": store})

    attempt()
    assert store.data[STORE_KEY]["ids"] == {"execution_id": "E7"}
    attempt()  # the retry reconnects to the finished execution
    assert threaded_dune.calls("POST", QUERY_EXECUTE) == 1


def test_a_known_row_count_over_the_limit_fails_before_success_is_declared(threaded_dune, caplog):
    threaded_dune.script(
        "POST", QUERY_EXECUTE, Answer(body={"execution_id": "E7", "state": "QUERY_STATE_PENDING"})
    )
    metadata = {"column_names": ["n"], "row_count": 50, "total_row_count": 50}
    threaded_dune.script(
        "GET",
        EXECUTION_STATUS,
        Answer(body={"state": "QUERY_STATE_COMPLETED", "query_id": 5, "result_metadata": metadata}),
    )
    op = DuneRunQueryOperator(task_id="q", query_id=5, push_rows_to_xcom=True, max_xcom_rows=10)
    with pytest.raises(Exception, match="50 rows"):
        op.execute({"ti": FakeTI()})
    assert threaded_dune.calls("GET", RESULTS) == 0  # no page was read to find out
    # The success line ("Dune execution E7 completed: ...") never came; the progress line
    # ("Dune execution E7: QUERY_STATE_COMPLETED, 50 rows.") only reports the state.
    assert "E7 completed" not in caplog.text


def test_do_xcom_push_false_silences_every_push(threaded_dune):
    threaded_dune.script("POST", EXECUTE, Answer(body={"pipeline_execution_id": "P1"}))
    threaded_dune.script("GET", STATUS, DONE)
    ti = FakeTI()
    op = DuneRunPipelineOperator(task_id="t", query_id=5, do_xcom_push=False)
    assert op.execute({"ti": ti}) == "P1"
    assert ti.pushed == {}
    with pytest.raises(ValueError, match="do_xcom_push"):
        DuneRunQueryOperator(task_id="q", query_id=5, push_rows_to_xcom=True, do_xcom_push=False)
