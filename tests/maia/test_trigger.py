"""MaiaPipelineTrigger: serializes without secrets, and ends in one event, against the emulator."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_dune.hooks.dune import close_shared_async_session
from airflow_provider_dune.hooks.maia import MaiaHook
from airflow_provider_dune.triggers.maia import MaiaPipelineTrigger
from tests.maia.conftest import CLIENT_SECRET


@pytest.fixture
async def pool():
    yield
    await close_shared_async_session()


async def collect(trigger):
    return [event async for event in trigger.run()]


def start(emulator, name: str, seconds: float | None = None) -> str:
    variables = {"emulator_seconds": str(seconds)} if seconds is not None else None
    return MaiaHook().start_pipeline(emulator.maia_project_id, name, "Dev", scalar_variables=variables)


def test_serialize_round_trips_and_holds_no_secret(maia_conn):
    trigger = MaiaPipelineTrigger("proj", "exec-1", maia_conn_id="my_maia", poll_interval=3, end_time=12.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_dune.triggers.maia.MaiaPipelineTrigger"
    assert kwargs == {
        "project_id": "proj",
        "pipeline_execution_id": "exec-1",
        "maia_conn_id": "my_maia",
        "poll_interval": 3,
        "end_time": 12.0,
        "fire_not_before": None,
        "fail_on_skipped": False,
        "cancel_on_kill": True,
    }
    assert MaiaPipelineTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert CLIENT_SECRET not in repr(trigger) + repr(kwargs)


@pytest.mark.usefixtures("pool")
@pytest.mark.parametrize(
    ("name", "fail_on_skipped", "status", "pipeline_status"),
    [
        ("load-orders", False, "success", "SUCCESS"),
        ("load-unknown-first", False, "success", "SUCCESS"),
        ("will-fail", False, "error", "FAILED"),
        ("forbidden-one", False, "error", "FORBIDDEN"),
        ("skip-me", False, "success", "SKIPPED"),
        ("skip-me", True, "error", "SKIPPED"),
    ],
)
async def test_one_event_per_outcome(maia_emulator, name, fail_on_skipped, status, pipeline_status):
    pid = await asyncio.to_thread(start, maia_emulator, name)
    trigger = MaiaPipelineTrigger(
        maia_emulator.maia_project_id, pid, poll_interval=0.05, fail_on_skipped=fail_on_skipped
    )
    events = await collect(trigger)
    assert len(events) == 1
    payload = events[0].payload
    assert set(payload) == {"status", "pipeline_execution_id", "project_id", "pipeline_status", "message"}
    assert (payload["status"], payload["pipeline_status"]) == (status, pipeline_status)
    assert payload["pipeline_execution_id"] == pid
    assert CLIENT_SECRET not in str(payload)


@pytest.mark.usefixtures("pool")
async def test_timeout_event_carries_the_last_status(maia_emulator):
    pid = await asyncio.to_thread(start, maia_emulator, "slow", 30)
    trigger = MaiaPipelineTrigger(
        maia_emulator.maia_project_id, pid, poll_interval=0.05, end_time=time.time() + 0.2
    )
    (event,) = await collect(trigger)
    assert event.payload["status"] == "timeout"
    assert event.payload["pipeline_status"] == "RUNNING"
    assert "Timed out" in event.payload["message"]


@pytest.mark.usefixtures("pool")
async def test_a_read_error_ends_in_an_error_event(maia_emulator):
    trigger = MaiaPipelineTrigger(
        maia_emulator.maia_project_id, "00000000-0000-0000-0000-000000000000", poll_interval=0.05
    )
    (event,) = await collect(trigger)
    assert event.payload["status"] == "error"
    assert "Pipeline Execution not Found" in event.payload["message"]


@pytest.mark.usefixtures("pool")
async def test_many_triggers_share_one_token_and_refresh_it_once_on_401(maia_emulator):
    pids = [await asyncio.to_thread(start, maia_emulator, f"p{i}", 0.3) for i in range(5)]
    maia_emulator.request_log.clear()
    from airflow_provider_dune.hooks import maia as maia_hook

    maia_hook.tokens.clear()
    triggers = [MaiaPipelineTrigger(maia_emulator.maia_project_id, p, poll_interval=0.05) for p in pids]
    results = await asyncio.gather(*(collect(t) for t in triggers))
    assert [r[0].payload["status"] for r in results] == ["success"] * 5
    assert maia_emulator.request_log.count(method="POST", path_prefix="/oauth/") == 1

    maia_emulator.maia_revoke_tokens()
    pid = await asyncio.to_thread(start, maia_emulator, "after-revoke", 0.1)
    (event,) = await collect(MaiaPipelineTrigger(maia_emulator.maia_project_id, pid, poll_interval=0.05))
    assert event.payload["status"] == "success"


@pytest.mark.usefixtures("pool")
async def test_on_kill_cancels_unless_told_not_to(maia_emulator):
    project = maia_emulator.maia_project_id
    pid = await asyncio.to_thread(start, maia_emulator, "long", 30)
    await MaiaPipelineTrigger(project, pid, cancel_on_kill=False).on_kill()
    assert maia_emulator.maia_execution_status(pid) == "RUNNING"
    await MaiaPipelineTrigger(project, pid).on_kill()
    assert maia_emulator.maia_execution_status(pid) in ("CANCELLING", "CANCELLED")
    patches = maia_emulator.request_log.filter(method="PATCH")
    assert [e.status for e in patches] == [200]
