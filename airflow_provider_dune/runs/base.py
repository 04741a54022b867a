"""The one poll/decide loop, for every service and every way of waiting.

An adapter (:class:`RemoteRun`) knows how to read one run's status and cancel it; this
module knows how to wait: poll at ``poll_interval`` (each read also waits its turn in the API
key's request budget, :mod:`airflow_provider_dune.hooks.budget`), log progress when it
changes, stop at the terminal state or the deadline, and describe the end as one small event
dict. The worker wait (:func:`wait_for_run`) and the triggerer
wait (:func:`poll_run`) are the same loop, one blocking and one async.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from airflow_provider_dune.exceptions import DuneError
from airflow_provider_dune.runs.outcome import RunOutcome

EventStatus = Literal["success", "error", "timeout"]


@dataclass(frozen=True)
class RunState:
    """One reading of a remote run's status, reduced to what the waiting loop needs.

    :param outcome: running, succeeded or failed.
    :param summary: one short line for the task log (``executing, 1/2 nodes done``).
    :param message: the text that ends the task: a success note or the failure explanation.
    :param payload: service data the end event carries and the operator pushes to XCom.
    """

    outcome: RunOutcome
    summary: str
    message: str
    payload: Mapping[str, Any] = field(default_factory=dict)


class RemoteRun(ABC):
    """Adapter for one run on a remote service: read its state, cancel it.

    Subclasses set :attr:`kind` (``"Dune pipeline"``), :attr:`xcom_keys` (payload entries
    pushed to XCom when a wait ends) and :attr:`empty_payload` (the payload when no status
    could be read), and implement the reads and the cancel.
    """

    kind: ClassVar[str] = "remote run"
    xcom_keys: ClassVar[tuple[str, ...]] = ()
    empty_payload: ClassVar[Mapping[str, Any]] = {}

    @property
    @abstractmethod
    def ids(self) -> dict[str, Any]:
        """What identifies the run in events and XCom, e.g. ``{"pipeline_execution_id": ...}``."""

    @property
    def label(self) -> str:
        return f"{self.kind} {next(iter(self.ids.values()), '')}"

    @abstractmethod
    def get_state(self) -> RunState: ...

    @abstractmethod
    async def aget_state(self) -> RunState: ...

    @abstractmethod
    def cancel(self) -> list[str]:
        """Stop whatever of the run is still going; return what was cancelled (ids)."""

    @abstractmethod
    async def acancel(self) -> list[str]:
        """The async twin of :meth:`cancel`, for a trigger whose task a user killed."""

    def failure_details(self, payload: Mapping[str, Any]) -> str:
        """Extra lines for a failure message, read in the worker (e.g. SQL line and column)."""
        return ""

    def complete_event(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        """A trigger's end event with what the trigger left for the worker to read.

        Reads that only the end of a run needs (a pipeline's cost) are made by the task that
        resumes from the event, from its own process's share of the key's request budget: in a
        triggerer they would queue behind every other wait's polls, and hold the event back.
        """
        return event

    def budget_delay(self) -> float:
        """Seconds the run's requests have waited, in all, for a slot of the key's request budget."""
        return 0.0


class RunTimedOut(DuneError):
    def __init__(self, run: RemoteRun, waited: float, last: RunState | None) -> None:
        self.run = run
        self.waited = waited
        self.last = last
        where = f" (last status: {last.summary})" if last else ""
        super().__init__(f"Timed out after {waited:.0f}s waiting for {run.label}{where}.")


class _ProgressLog:
    """Logs the run's summary when it changes, not on every poll."""

    def __init__(self, run: RemoteRun, log: logging.Logger | Any) -> None:
        self.run = run
        self.log = log
        self.last = ""

    def note(self, state: RunState) -> None:
        if state.summary != self.last:
            self.log.info("%s: %s.", self.run.label, state.summary)
            self.last = state.summary


def _rate_limited(exc: DuneError) -> bool:
    """A read that met 429s past the hook's retries: a reason to slow down, not to give up."""
    return getattr(exc, "status_code", None) == 429


def wait_for_run(
    run: RemoteRun,
    *,
    poll_interval: float,
    timeout: float | None,
    log: logging.Logger | Any,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RunState:
    """Block until the run is terminal and return its last state; :class:`RunTimedOut` past ``timeout``."""
    started = clock()
    progress = _ProgressLog(run, log)
    last: RunState | None = None
    at_deadline = False
    while True:
        read_started = clock()
        try:
            state: RunState | None = run.get_state()
        except DuneError as exc:
            if not _rate_limited(exc):
                raise
            # The key's request budget has slowed down for every wait of this process already.
            log.warning("%s: still rate-limited (%s); trying again at the next poll.", run.label, exc)
            state = None
        if state is not None:
            last = state
            progress.note(state)
            if state.outcome.is_terminal:
                return state
        if at_deadline:
            raise RunTimedOut(run, clock() - started, last)
        # The interval runs from when this read asked for its turn: time spent waiting for a slot
        # of the key's budget counts, so under a full budget every run polls once a fair round.
        wait = max(0.0, poll_interval - (clock() - read_started))
        waited = clock() - started
        if timeout is not None and waited + wait > timeout:
            # One last read at the deadline, so a run that just finished is not called a timeout.
            wait = max(0.0, timeout - waited)
            at_deadline = True
        sleep(wait)


async def poll_run(
    run: RemoteRun,
    *,
    poll_interval: float,
    end_time: float | None,
    log: logging.Logger | Any,
) -> dict[str, Any]:
    """The async twin of :func:`wait_for_run`, for triggers: returns the end event instead of raising.

    ``end_time`` is wall-clock (epoch seconds) because it must survive a triggerer restart.
    """
    started = time.time()
    progress = _ProgressLog(run, log)
    last: RunState | None = None
    while True:
        read_started = time.monotonic()
        try:
            state: RunState | None = await run.aget_state()
        except DuneError as exc:
            if not _rate_limited(exc):
                # The hook has already retried what can be retried; this will not heal by waiting.
                return error_event(run, str(exc))
            log.warning("%s: still rate-limited (%s); trying again at the next poll.", run.label, exc)
            state = None
        if state is not None:
            last = state
            progress.note(state)
            if state.outcome.is_terminal:
                return final_event(run, state)
        now = time.time()
        if end_time is not None and now >= end_time:
            return timeout_event(run, now - started, last)
        wait = max(0.0, poll_interval - (time.monotonic() - read_started))
        if end_time is not None:
            wait = min(wait, max(0.0, end_time - now))
        await asyncio.sleep(wait)


# ------------------------------------------------------------------ the end-of-wait event


def _budget_note(run: RemoteRun) -> dict[str, float]:
    """``budget_delay_seconds``, when the key's request budget slowed the wait at all."""
    delay = round(run.budget_delay(), 1)
    return {"budget_delay_seconds": delay} if delay > 0 else {}


def final_event(run: RemoteRun, state: RunState) -> dict[str, Any]:
    status: EventStatus = "success" if state.outcome is RunOutcome.SUCCEEDED else "error"
    return {"status": status, **run.ids, **state.payload, "message": state.message, **_budget_note(run)}


def timeout_event(run: RemoteRun, waited: float, last: RunState | None) -> dict[str, Any]:
    payload = last.payload if last else run.empty_payload
    message = str(RunTimedOut(run, waited, last))
    return {"status": "timeout", **run.ids, **payload, "message": message, **_budget_note(run)}


def error_event(run: RemoteRun, message: str) -> dict[str, Any]:
    """The wait stopped because the run's status could not be read: the run itself may go on.

    ``unreadable`` tells the operator to keep its resume record, so a retry reconnects.
    """
    return {
        "status": "error",
        **run.ids,
        **run.empty_payload,
        "message": message,
        "unreadable": True,
        **_budget_note(run),
    }
