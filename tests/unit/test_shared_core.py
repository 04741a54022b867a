"""The one poll/decide loop drives every service the same way: Dune pipelines and Maia pipelines.

Each adapter is started against the local emulator and waited for through ``wait_for_run``
(worker) and ``poll_run`` (triggerer); the end events must have the same shape, and the
cancel path must stop the run and end it as a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from airflow_provider_dune.emulator import DuneEmulator
from airflow_provider_dune.hooks.dune import DuneHook, close_shared_async_session
from airflow_provider_dune.hooks.maia import MaiaHook
from airflow_provider_dune.runs.base import RemoteRun, final_event, poll_run, wait_for_run
from airflow_provider_dune.runs.dune import DunePipelineRun
from airflow_provider_dune.runs.maia import MaiaPipelineRun
from airflow_provider_dune.runs.outcome import RunOutcome

log = logging.getLogger(__name__)


@dataclass
class Service:
    name: str
    start: Callable[[DuneEmulator, float], RemoteRun]


def start_dune(emulator: DuneEmulator, seconds: float) -> RemoteRun:
    emulator.execution_seconds = seconds
    hook = DuneHook()
    return DunePipelineRun(hook, hook.execute_pipeline(query_id=1003))


def start_maia(emulator: DuneEmulator, seconds: float) -> RemoteRun:
    hook = MaiaHook()
    pid = hook.start_pipeline(
        emulator.maia_project_id, "core-test", "Dev", scalar_variables={"emulator_seconds": str(seconds)}
    )
    return MaiaPipelineRun(hook, emulator.maia_project_id, pid)


SERVICES = [Service("dune", start_dune), Service("maia", start_maia)]


@pytest.fixture(scope="module")
def emulator() -> Iterator[DuneEmulator]:
    with DuneEmulator(execution_seconds=0.1) as running:
        yield running


@pytest.fixture(params=SERVICES, ids=lambda s: s.name)
def service(
    request: pytest.FixtureRequest, emulator: DuneEmulator, monkeypatch: pytest.MonkeyPatch
) -> Service:
    monkeypatch.setenv("AIRFLOW_CONN_DUNE_DEFAULT", emulator.airflow_conn_json())
    monkeypatch.setenv("AIRFLOW_CONN_MAIA_DEFAULT", emulator.maia_airflow_conn_json())
    return request.param


def event_keys(run: RemoteRun) -> set[str]:
    """The shape every end event has, whatever the service: status, ids, payload, message."""
    return {"status", "message", *run.ids, *run.empty_payload}


def test_worker_wait_ends_in_a_success_event(service, emulator):
    run = service.start(emulator, 0.1)
    state = wait_for_run(run, poll_interval=0.05, timeout=30, log=log)
    assert state.outcome is RunOutcome.SUCCEEDED
    event = final_event(run, state)
    assert event["status"] == "success"
    assert set(event) == event_keys(run)


async def test_triggerer_wait_ends_in_the_same_event_shape(service, emulator):
    run = service.start(emulator, 0.1)
    try:
        event = await poll_run(run, poll_interval=0.05, end_time=None, log=log)
    finally:
        await close_shared_async_session()
    assert event["status"] == "success"
    assert set(event) == event_keys(run)
    assert {k: event[k] for k in run.ids} == run.ids


async def test_deadline_ends_in_a_timeout_event(service, emulator):
    import time

    run = service.start(emulator, 30)
    try:
        event = await poll_run(run, poll_interval=0.05, end_time=time.time() + 0.2, log=log)
    finally:
        await close_shared_async_session()
        run.cancel()
    assert event["status"] == "timeout"
    assert set(event) == event_keys(run)


def test_cancel_stops_the_run_and_it_ends_as_a_failure(service, emulator):
    run = service.start(emulator, 30)
    assert run.get_state().outcome is RunOutcome.RUNNING
    assert run.cancel() != []
    state = wait_for_run(run, poll_interval=0.05, timeout=30, log=log)
    assert state.outcome is RunOutcome.FAILED
    event = final_event(run, state)
    assert event["status"] == "error"
    assert set(event) == event_keys(run)
    # Cancelling a run that has ended is a no-op, not an error.
    assert run.cancel() == []


async def test_async_cancel_stops_the_run(service, emulator):
    run = service.start(emulator, 30)
    try:
        assert await run.acancel() != []
        event = await poll_run(run, poll_interval=0.05, end_time=None, log=log)
    finally:
        await close_shared_async_session()
    assert event["status"] == "error"
