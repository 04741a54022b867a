from __future__ import annotations

import asyncio

import pytest

from airflow_provider_dune.exceptions import DuneApiError
from airflow_provider_dune.hooks import http as transport
from airflow_provider_dune.hooks.dune import DuneHook, shared_async_session
from tests.conftest import TEST_API_KEY
from tests.scripted_server import Answer

STATUS = "/api/v1/pipelines/executions/P1/status"


@pytest.fixture
def no_sleep(monkeypatch):
    waits: list[float] = []

    async def fake_sleep(seconds):
        waits.append(seconds)

    monkeypatch.setattr(transport.asyncio, "sleep", fake_sleep)
    return waits


async def test_async_status_sends_key_in_header_only(scripted_dune):
    scripted_dune.script("GET", STATUS, Answer(body={"status": "executing", "node_executions": []}))
    status = await DuneHook().aget_pipeline_status("P1")
    assert status.status == "executing"
    seen = scripted_dune.requests[0]
    assert seen.headers["X-Dune-Api-Key"] == TEST_API_KEY
    assert TEST_API_KEY not in seen.path + seen.query
    assert seen.headers["User-Agent"].startswith("airflow-provider-dune/")


async def test_async_retries_reads_and_honours_retry_after(scripted_dune, no_sleep):
    scripted_dune.script(
        "GET",
        STATUS,
        Answer(429, {"error": "slow down"}, {"Retry-After": "4"}),
        Answer(503, {"error": "unavailable"}),
        Answer(200, "{broken json"),
        Answer(200, {"status": "completed", "node_executions": []}),
    )
    status = await DuneHook(retry_delay=0.01).aget_pipeline_status("P1")
    assert status.status == "completed"
    assert no_sleep[0] == 4.0
    assert scripted_dune.calls("GET", STATUS) == 4


async def test_async_client_error_is_raised_without_retry(scripted_dune, no_sleep):
    scripted_dune.script("GET", STATUS, Answer(404, {"error": "Object not found"}))
    with pytest.raises(DuneApiError) as err:
        await DuneHook().aget_pipeline_status("P1")
    assert err.value.status_code == 404
    assert err.value.message == "Object not found"
    assert no_sleep == []


async def test_async_cancel(scripted_dune):
    scripted_dune.script("POST", "/api/v1/execution/E1/cancel", Answer(body={"success": True}))
    assert await DuneHook().acancel_execution("E1") is True


async def test_hooks_share_one_pool_per_event_loop(scripted_dune):
    scripted_dune.script("GET", STATUS, Answer(body={"status": "pending"}))
    for _ in range(5):
        await DuneHook().aget_pipeline_status("P1")
    assert shared_async_session() is shared_async_session()
    # Five hooks, five polls, one kept-alive connection (one client port seen by the server).
    assert len({r.peer for r in scripted_dune.requests}) == 1


def test_the_pool_closes_with_an_event_loop_that_ends():
    """`airflow dags test` runs each trigger in its own asyncio.run(): no pool may outlive it."""

    async def use() -> object:
        return shared_async_session()

    first, second = asyncio.run(use()), asyncio.run(use())
    assert first is not second
    assert first.closed and second.closed


async def test_async_unchanged_status_is_reused_and_a_change_is_seen(scripted_dune):
    running = {"status": "executing", "node_executions": []}
    scripted_dune.script(
        "GET",
        STATUS,
        Answer(body=running),
        Answer(body=running),
        Answer(body={"status": "completed", "node_executions": []}),
    )
    hook = DuneHook()
    first = await hook.aget_pipeline_status("P1")
    second = await hook.aget_pipeline_status("P1")
    third = await hook.aget_pipeline_status("P1")
    assert second is first
    assert third.status == "completed"
    assert scripted_dune.calls("GET", STATUS) == 3
