"""The service-neutral poll/decide loop, with a fake adapter (no HTTP)."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_dune.exceptions import DuneApiError
from airflow_provider_dune.runs.base import (
    PollPacer,
    RemoteRun,
    RunState,
    RunTimedOut,
    poll_run,
    wait_for_run,
)
from airflow_provider_dune.runs.outcome import RunOutcome

RUNNING = RunState(RunOutcome.RUNNING, "executing", "", {"things": [1]})
DONE = RunState(RunOutcome.SUCCEEDED, "completed", "all good", {"things": [1, 2]})
FAILED = RunState(RunOutcome.FAILED, "failed", "it broke", {"things": []})


class FakeRun(RemoteRun):
    kind = "Fake run"
    xcom_keys = ("things",)

    def __init__(self, *states, throttle_at=()):
        self.states = list(states)
        self.reads = 0
        self.throttles = 0
        self.throttle_at = set(throttle_at)
        self.cancelled = False

    @property
    def ids(self):
        return {"fake_id": "F1"}

    def get_state(self):
        self.reads += 1
        if self.reads in self.throttle_at:
            self.throttles += 1
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(state, Exception):
            raise state
        return state

    async def aget_state(self):
        return self.get_state()

    def cancel(self):
        self.cancelled = True
        return ["F1"]

    async def acancel(self):
        return self.cancel()

    def throttle_count(self):
        return self.throttles


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_returns_the_terminal_state_and_polls_no_further():
    clock = Clock()
    run = FakeRun(RUNNING, RUNNING, DONE, RUNNING)
    state = wait_for_run(
        run,
        poll_interval=5,
        timeout=None,
        log=logging.getLogger(),
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    assert state is DONE
    assert run.reads == 3
    assert clock.sleeps == [5, 5]


def test_wait_times_out_with_the_run_and_the_time_waited():
    clock = Clock()
    run = FakeRun(RUNNING)
    with pytest.raises(RunTimedOut) as err:
        wait_for_run(
            run,
            poll_interval=10,
            timeout=25,
            log=logging.getLogger(),
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
    assert str(err.value) == "Timed out after 25s waiting for Fake run F1 (last status: executing)."
    assert sum(clock.sleeps) == 25  # it waited exactly to the deadline, then read once more


def test_a_run_that_finishes_at_the_deadline_is_not_a_timeout():
    clock = Clock()
    run = FakeRun(RUNNING, RUNNING, RUNNING, DONE)
    state = wait_for_run(
        run, poll_interval=10, timeout=25, log=logging.getLogger(), sleep=clock.sleep, clock=lambda: clock.now
    )
    assert state is DONE


def test_a_rate_limited_read_at_the_deadline_is_a_timeout_not_an_api_error():
    clock = Clock()
    run = FakeRun(RUNNING, RUNNING, RUNNING, DuneApiError(429, "Too many requests"))
    with pytest.raises(RunTimedOut, match="last status: executing"):
        wait_for_run(
            run,
            poll_interval=10,
            timeout=25,
            log=logging.getLogger(),
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )


def test_rate_limits_stretch_the_interval_and_it_recovers():
    clock = Clock()
    run = FakeRun(RUNNING, RUNNING, RUNNING, RUNNING, RUNNING, DONE, throttle_at={1, 2})
    wait_for_run(
        run,
        poll_interval=2,
        timeout=None,
        log=logging.getLogger(),
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    assert clock.sleeps == [4, 8, 4, 2, 2]
    assert min(clock.sleeps) >= 2  # never faster than poll_interval


def test_pacer_is_capped():
    pacer = PollPacer(1, max_factor=8)
    assert [pacer.next_wait(True) for _ in range(5)] == [2, 4, 8, 8, 8]


def test_progress_is_logged_when_it_changes_not_every_poll(caplog):
    caplog.set_level(logging.INFO)
    clock = Clock()
    run = FakeRun(RUNNING, RUNNING, RUNNING, DONE)
    wait_for_run(
        run,
        poll_interval=1,
        timeout=None,
        log=logging.getLogger("t"),
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "t"]
    assert lines == ["Fake run F1: executing.", "Fake run F1: completed."]


async def test_poll_run_events(monkeypatch):
    async def no_sleep(_):
        return None

    monkeypatch.setattr("airflow_provider_dune.runs.base.asyncio.sleep", no_sleep)
    log = logging.getLogger()
    assert await poll_run(FakeRun(RUNNING, DONE), poll_interval=1, end_time=None, log=log) == {
        "status": "success",
        "fake_id": "F1",
        "things": [1, 2],
        "message": "all good",
    }
    assert (await poll_run(FakeRun(FAILED), poll_interval=1, end_time=None, log=log))["status"] == "error"
    timeout = await poll_run(FakeRun(RUNNING), poll_interval=1, end_time=0, log=log)
    assert timeout["status"] == "timeout"
    assert timeout["things"] == [1]
    error = await poll_run(
        FakeRun(DuneApiError(401, "invalid API Key")), poll_interval=1, end_time=None, log=log
    )
    assert error["status"] == "error"
    assert "HTTP 401" in error["message"]


def test_a_read_still_rate_limited_after_retries_slows_down_instead_of_failing():
    clock = Clock()
    limited = DuneApiError(429, "Too many requests")
    run = FakeRun(RUNNING, limited, limited, DONE)
    state = wait_for_run(
        run,
        poll_interval=2,
        timeout=None,
        log=logging.getLogger(),
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    assert state is DONE
    assert clock.sleeps == [2, 4, 8]


def test_other_read_errors_still_end_the_wait():
    with pytest.raises(DuneApiError):
        wait_for_run(
            FakeRun(RUNNING, DuneApiError(404, "Object not found")),
            poll_interval=1,
            timeout=None,
            log=logging.getLogger(),
            sleep=lambda s: None,
        )


async def test_poll_run_keeps_polling_through_rate_limits_and_marks_unreadable_errors(monkeypatch):
    async def no_sleep(_):
        return None

    monkeypatch.setattr("airflow_provider_dune.runs.base.asyncio.sleep", no_sleep)
    log = logging.getLogger()
    limited = DuneApiError(429, "Too many requests")
    event = await poll_run(FakeRun(limited, limited, DONE), poll_interval=1, end_time=None, log=log)
    assert event["status"] == "success"
    error = await poll_run(FakeRun(DuneApiError(500, "down")), poll_interval=1, end_time=None, log=log)
    assert error["unreadable"] is True
    assert "unreadable" not in await poll_run(FakeRun(FAILED), poll_interval=1, end_time=None, log=log)
