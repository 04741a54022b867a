from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.triggers.dune import DunePipelineTrigger
from tests.conftest import TEST_API_KEY
from tests.scripted_server import Answer

STATUS = "/api/v1/pipelines/executions/P1/status"
RUNNING = Answer(
    body={
        "status": "executing",
        "node_executions": [
            {"id": 1, "query_execution_status": {"status": "executing", "query_id": 5, "execution_id": "E1"}}
        ],
    }
)
DONE = Answer(
    body={
        "status": "completed",
        "node_executions": [
            {"id": 1, "query_execution_status": {"status": "completed", "query_id": 5, "execution_id": "E1"}}
        ],
    }
)


async def collect(trigger):
    return [event async for event in trigger.run()]


def test_serialize_round_trips_and_holds_no_secret():
    trigger = DunePipelineTrigger(
        "P1", dune_conn_id="my_dune", poll_interval=3, end_time=123.0, fire_not_before=100.0, max_credits=50
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_dune.triggers.dune.DunePipelineTrigger"
    assert kwargs == {
        "pipeline_execution_id": "P1",
        "dune_conn_id": "my_dune",
        "max_credits": 50,
        "poll_interval": 3,
        "end_time": 123.0,
        "fire_not_before": 100.0,
        "cancel_on_kill": True,
    }
    assert TEST_API_KEY not in repr(trigger)
    assert DunePipelineTrigger(**kwargs).serialize() == (classpath, kwargs)


async def test_fires_one_success_event_after_polling(scripted_dune):
    scripted_dune.script("GET", STATUS, RUNNING, RUNNING, DONE)
    events = await collect(DunePipelineTrigger("P1", poll_interval=0.01))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert payload["pipeline_execution_id"] == "P1"
    assert payload["node_executions"][0]["execution_id"] == "E1"
    assert scripted_dune.calls("GET", STATUS) == 3  # no poll after the terminal state
    # The cost is the resuming task's read, not the trigger's: it would queue behind other polls.
    assert scripted_dune.calls("GET", "/api/v1/execution/E1/status") == 0
    assert payload["credits_used"] is None


async def test_failure_event_names_node_query_and_error(scripted_dune):
    scripted_dune.script(
        "GET",
        STATUS,
        Answer(
            body={
                "status": "failed",
                "node_executions": [
                    {
                        "id": 1,
                        "materialized_view_refresh_status": {
                            "status": "completed",
                            "name": "dune.t.result_v",
                        },
                    },
                    {
                        "id": 2,
                        "query_execution_status": {
                            "status": "failed",
                            "query_id": 77,
                            "execution_id": "E2",
                            "error": "line 3:5: Table 'x' does not exist",
                        },
                    },
                ],
            }
        ),
    )
    (event,) = await collect(DunePipelineTrigger("P1", poll_interval=0.01))
    assert event.payload["status"] == "error"
    assert "node 2 (query 77)" in event.payload["message"]
    assert "line 3:5: Table 'x' does not exist" in event.payload["message"]


async def test_timeout_event_says_how_long_and_which_pipeline(scripted_dune):
    scripted_dune.script("GET", STATUS, RUNNING)
    (event,) = await collect(DunePipelineTrigger("P1", poll_interval=0.05, end_time=time.time() + 0.2))
    assert event.payload["status"] == "timeout"
    assert "waiting for Dune pipeline P1" in event.payload["message"]
    assert event.payload["node_executions"][0]["status"] == "executing"


async def test_api_error_becomes_an_error_event_without_the_key(scripted_dune):
    scripted_dune.script("GET", STATUS, Answer(401, {"error": "invalid API Key"}))
    (event,) = await collect(DunePipelineTrigger("P1", poll_interval=0.01))
    assert event.payload["status"] == "error"
    assert "HTTP 401" in event.payload["message"]
    assert TEST_API_KEY not in event.payload["message"]


async def test_unknown_states_keep_the_trigger_polling(scripted_dune):
    odd = Answer(
        body={
            "status": "rebalancing",
            "node_executions": [
                {"id": 1, "query_execution_status": {"status": "QUERY_STATE_WARP", "query_id": 5}}
            ],
        }
    )
    scripted_dune.script("GET", STATUS, odd, odd, DONE)
    (event,) = await collect(DunePipelineTrigger("P1", poll_interval=0.01))
    assert event.payload["status"] == "success"
    assert scripted_dune.calls("GET", STATUS) == 3


async def test_restarted_trigger_carries_on_with_the_same_pipeline(scripted_dune):
    scripted_dune.script("GET", STATUS, RUNNING, DONE)
    first = DunePipelineTrigger("P1", poll_interval=0.01)
    gen = first.run()
    # The triggerer dies while the first trigger sleeps between polls ...
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(gen.__anext__(), timeout=0.005)
    await gen.aclose()
    # ... and a new one is built from the stored kwargs.
    _, kwargs = first.serialize()
    (event,) = await collect(DunePipelineTrigger(**kwargs))
    assert event.payload["status"] == "success"
    assert event.payload["pipeline_execution_id"] == "P1"


async def test_trigger_never_uses_the_blocking_connection_lookup(scripted_dune, monkeypatch):
    # A sync lookup inside the triggerer's loop stalls every trigger (and can deadlock Airflow 3).
    # (Airflow 2.11 has no async lookup: there the sync one runs in a worker thread, which is fine.)
    original = DuneHook.get_connection

    def guarded_lookup(cls, *args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return original(*args, **kwargs)
        raise AssertionError("blocking get_connection called on the triggerer's event loop")

    monkeypatch.setattr(DuneHook, "get_connection", classmethod(guarded_lookup))
    scripted_dune.script("GET", STATUS, DONE)
    (event,) = await collect(DunePipelineTrigger("P1", poll_interval=0.01))
    assert event.payload["status"] == "success"


async def test_a_rerun_trigger_carries_the_skipped_nodes_into_its_event(scripted_dune):
    carried = [
        {
            "node_id": 0,
            "type": "query",
            "query_id": 4,
            "name": None,
            "execution_id": "E0",
            "status": "completed",
        }
    ]
    trigger = DunePipelineTrigger("P1", poll_interval=0.01, carried_nodes=carried)
    _, kwargs = trigger.serialize()
    assert kwargs["carried_nodes"] == carried  # survives a triggerer restart
    scripted_dune.script("GET", STATUS, DONE)
    scripted_dune.script(
        "GET",
        "/api/v1/execution/E1/status",
        Answer(body={"execution_id": "E1", "state": "QUERY_STATE_COMPLETED"}),
    )
    (event,) = await collect(DunePipelineTrigger(**kwargs))
    assert [n["execution_id"] for n in event.payload["node_executions"]] == ["E0", "E1"]
    assert event.payload["carried_nodes"] == carried
