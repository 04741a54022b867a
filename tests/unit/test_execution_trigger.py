"""DuneExecutionTrigger on a real loopback server: events, partial results, cancel, serialization."""

from __future__ import annotations

from airflow_provider_dune.triggers.dune import DuneExecutionTrigger
from tests.conftest import TEST_API_KEY
from tests.scripted_server import Answer

STATUS = "/api/v1/execution/E1/status"
CANCEL = "/api/v1/execution/E1/cancel"


def state(name, **extra):
    return Answer(body={"execution_id": "E1", "query_id": 5, "state": name, **extra})


async def collect(trigger):
    return [event async for event in trigger.run()]


def test_serialize_round_trips_and_holds_no_secret():
    trigger = DuneExecutionTrigger(
        "E1", dune_conn_id="d", poll_interval=2, end_time=9.0, allow_partial_results=True
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_dune.triggers.dune.DuneExecutionTrigger"
    assert kwargs == {
        "execution_id": "E1",
        "dune_conn_id": "d",
        "poll_interval": 2,
        "end_time": 9.0,
        "fire_not_before": None,
        "allow_partial_results": True,
        "cancel_on_kill": True,
    }
    assert DuneExecutionTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert TEST_API_KEY not in repr(trigger)


async def test_one_success_event_with_status_and_metadata(scripted_dune):
    meta = {"column_names": ["a"], "total_row_count": 3, "row_count": 3}
    scripted_dune.script(
        "GET",
        STATUS,
        state("QUERY_STATE_PENDING"),
        state("QUERY_STATE_EXECUTING"),
        state("QUERY_STATE_COMPLETED", result_metadata=meta, execution_ended_at="2024-01-01T00:00:01Z"),
    )
    events = await collect(DuneExecutionTrigger("E1", poll_interval=0.01))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success" and payload["execution_id"] == "E1"
    assert payload["execution"]["result_metadata"] == meta
    assert payload["execution"]["execution_ended_at"] == "2024-01-01T00:00:01Z"
    assert scripted_dune.calls("GET", STATUS) == 3


async def test_partial_result_is_an_error_unless_allowed(scripted_dune):
    scripted_dune.script("GET", STATUS, state("QUERY_STATE_COMPLETED_PARTIAL"))
    [event] = await collect(DuneExecutionTrigger("E1", poll_interval=0.01))
    assert event.payload["status"] == "error"
    assert "allow_partial_results=True" in event.payload["message"]
    [event] = await collect(DuneExecutionTrigger("E1", poll_interval=0.01, allow_partial_results=True))
    assert event.payload["status"] == "success"


async def test_failed_execution_event_carries_the_sql_position(scripted_dune):
    error = {"type": "FAILED_TYPE_EXECUTION_FAILED", "message": "boom", "metadata": {"line": 2, "column": 4}}
    scripted_dune.script("GET", STATUS, state("QUERY_STATE_FAILED", error=error))
    [event] = await collect(DuneExecutionTrigger("E1", poll_interval=0.01))
    assert event.payload["status"] == "error"
    assert event.payload["message"].endswith("failed: FAILED_TYPE_EXECUTION_FAILED: boom (line 2, column 4)")


async def test_timeout_event(scripted_dune):
    scripted_dune.script("GET", STATUS, state("QUERY_STATE_EXECUTING"))
    [event] = await collect(DuneExecutionTrigger("E1", poll_interval=0.01, end_time=0.0))
    assert event.payload["status"] == "timeout"
    assert event.payload["execution"]["state"] == "QUERY_STATE_EXECUTING"


async def test_on_kill_cancels_a_running_execution_only(scripted_dune):
    scripted_dune.script("GET", STATUS, state("QUERY_STATE_EXECUTING"), state("QUERY_STATE_COMPLETED"))
    scripted_dune.script("POST", CANCEL, Answer(body={"success": True}))
    assert await DuneExecutionTrigger("E1").remote_run().acancel() == ["E1"]
    assert await DuneExecutionTrigger("E1").remote_run().acancel() == []
    assert scripted_dune.calls("POST", CANCEL) == 1
