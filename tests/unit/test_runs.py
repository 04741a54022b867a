"""The service-neutral poll/decide loop, with a fake adapter (no HTTP)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from airflow_provider_dune.exceptions import DuneApiError
from airflow_provider_dune.operators.base import finish_wait
from airflow_provider_dune.runs.base import (
    RemoteRun,
    RunState,
    RunTimedOut,
    final_event,
    poll_run,
    wait_for_run,
)
from airflow_provider_dune.runs.outcome import RunOutcome
from tests.helpers import FakeTI

RUNNING = RunState(RunOutcome.RUNNING, "executing", "", {"things": [1]})
DONE = RunState(RunOutcome.SUCCEEDED, "completed", "all good", {"things": [1, 2]})
FAILED = RunState(RunOutcome.FAILED, "failed", "it broke", {"things": []})


class FakeRun(RemoteRun):
    kind = "Fake run"
    xcom_keys = ("things",)

    def __init__(self, *states):
        self.states = list(states)
        self.reads = 0
        self.cancelled = False

    @property
    def ids(self):
        return {"fake_id": "F1"}

    def get_state(self):
        self.reads += 1
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


def test_the_loop_polls_at_its_interval_and_leaves_slowing_down_to_the_shared_budget():
    clock = Clock()
    run = FakeRun(RUNNING, RUNNING, RUNNING, DONE)
    wait_for_run(
        run,
        poll_interval=2,
        timeout=None,
        log=logging.getLogger(),
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    # 429s met by the reads no longer double this run's own interval: the key's request budget
    # (hooks/budget.py) slows every wait of the process down together.
    assert clock.sleeps == [2, 2, 2]


def test_time_spent_waiting_for_the_budget_counts_towards_the_interval():
    clock = Clock()

    class Queued(FakeRun):
        def get_state(self):
            clock.now += 3  # the read waited 3 s for its slot of the key's budget
            return super().get_state()

    wait_for_run(
        Queued(RUNNING, RUNNING, DONE),
        poll_interval=10,
        timeout=None,
        log=logging.getLogger(),
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    # Once every 10 s from asking, not 10 s after the answer: a full budget stretches the
    # interval to a fair round, no further.
    assert clock.sleeps == [7, 7]


def test_the_budget_delay_of_a_run_is_in_its_end_event_and_xcom():
    class Delayed(FakeRun):
        def budget_delay(self):
            return 12.34

    assert final_event(Delayed(DONE), DONE)["budget_delay_seconds"] == 12.3
    assert "budget_delay_seconds" not in final_event(FakeRun(DONE), DONE)
    ti = FakeTI()
    task = SimpleNamespace(log=logging.getLogger(), do_xcom_push=True)
    finish_wait(task, Delayed(DONE), final_event(Delayed(DONE), DONE), {"ti": ti})
    assert ti.pushed["budget_delay_seconds"] == 12.3


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
    assert clock.sleeps == [2, 2, 2]


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
