"""What every operator that starts a remote run and waits for it shares.

A concrete operator says how to submit (:meth:`RemoteRunOperatorMixin.submit`), which
:class:`RemoteRun` the ids describe, and which trigger waits for it; this mixin does the
rest the same way for every service: push the ids to XCom at once, wait in the worker or
defer, turn the end event into a return value or one clear exception, cancel on kill and on
timeout.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_dune.exceptions import DuneError
from airflow_provider_dune.operators.resume import ResumeStore, resume_store_for
from airflow_provider_dune.runs.base import (
    RemoteRun,
    RunState,
    RunTimedOut,
    final_event,
    timeout_event,
    wait_for_run,
)
from airflow_provider_dune.runs.outcome import RunOutcome
from airflow_provider_dune.validation import optional_positive_seconds, positive_seconds

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.triggers.base import BaseTrigger


class RemoteRunFailed(DuneError):
    """A remote run ended in failure, or the wait for it ended before it did."""


def finish_wait(run: RemoteRun, event: Mapping[str, Any], context: Context, log: Any) -> None:
    """Push the event's payload to XCom, then return on success or raise what went wrong."""
    for key in run.xcom_keys:
        if event.get(key):
            context["ti"].xcom_push(key=key, value=event[key])
    status = event.get("status")
    message = str(event.get("message") or f"{run.label} ended with status {status!r}.")
    if status == "success":
        log.info("%s", message)
        return
    if status == "error":
        details = run.failure_details(event)
        if details:
            message = f"{message}\n{details}"
    raise RemoteRunFailed(message)


class RemoteRunOperatorMixin:
    """Submit, record the ids, then wait (worker or triggerer) through the shared loop.

    The operator's ``__init__`` calls :meth:`_set_wait_options` with the arguments every such
    operator takes; ``run_id_key`` names the id (in :attr:`RemoteRun.ids`) that the task
    returns and keeps as an attribute of the same name. Its ``execute`` is
    ``return self._returning_id(self.run_and_wait(context))``, written in the operator class
    itself so that Airflow's metaclass guards it.
    """

    wait_for_termination: bool
    deferrable: bool
    poll_interval: float
    timeout: float | None
    cancel_on_kill: bool
    run_id_key: str
    log: Any
    _remote_run: RemoteRun | None = None

    def _set_wait_options(
        self,
        wait_for_termination: bool,
        deferrable: bool,
        poll_interval: float,
        timeout: float | None,
        cancel_on_kill: bool,
    ) -> None:
        """Check and keep how the operator waits for the run it starts."""
        poll_interval = positive_seconds(poll_interval, "poll_interval")
        timeout = optional_positive_seconds(timeout, "timeout")
        self.wait_for_termination = wait_for_termination
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill

    def _returning_id(self, run: RemoteRun) -> str:
        """The run's ``run_id_key`` id, kept as the operator's attribute of that name."""
        run_id: str = run.ids[self.run_id_key]
        setattr(self, self.run_id_key, run_id)
        return run_id

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Called when the trigger fires: return the run's id or raise what went wrong."""
        return self._returning_id(self.complete_from_event(context, event))

    @abstractmethod
    def submit(self, context: Context) -> RemoteRun:
        """Start the remote work (after validating every argument) and return its adapter."""

    @abstractmethod
    def run_from_ids(self, ids: Mapping[str, Any]) -> RemoteRun:
        """The adapter for a run the ids (from an event) describe."""

    def link_xcoms(self) -> Mapping[str, str]:
        """XComs behind the operator's extra links (e.g. the query's page on dune.com)."""
        return {}

    @abstractmethod
    def make_trigger(self, run: RemoteRun, end_time: float | None) -> BaseTrigger: ...

    def run_and_wait(self, context: Context) -> RemoteRun:
        store = resume_store_for(context)
        run, state = self._resume(store)
        if run is None:
            run = self.submit(context)
            # Recorded before anything else can fail, so a retry finds it.
            store.put(run.ids)
            self.log.info("Started %s.", run.label)
        self._remote_run = run
        # On every try, reconnected or not: the links must work for the try a person looks at.
        for key, value in self.link_xcoms().items():
            context["ti"].xcom_push(key=key, value=value)
        for key, value in run.ids.items():
            context["ti"].xcom_push(key=key, value=value)
        if state is not None and state.outcome is RunOutcome.SUCCEEDED:
            self.end_wait(run, final_event(run, state), context)
            return run
        if not self.wait_for_termination:
            state = run.get_state()
            for key in run.xcom_keys:
                context["ti"].xcom_push(key=key, value=state.payload.get(key))
            store.forget()
            return run
        if self.deferrable:
            end_time = time.time() + self.timeout if self.timeout is not None else None
            self.defer(  # type: ignore[attr-defined]  # BaseOperator's
                trigger=self.make_trigger(run, end_time), method_name="execute_complete"
            )
        try:
            state = wait_for_run(run, poll_interval=self.poll_interval, timeout=self.timeout, log=self.log)
            event = final_event(run, state)
        except RunTimedOut as exc:
            event = timeout_event(run, exc.waited, exc.last)
        self.end_wait(run, event, context)
        return run

    def _resume(self, store: ResumeStore) -> tuple[RemoteRun | None, RunState | None]:
        """The run an earlier try of this task started, if it is still worth reconnecting to."""
        ids = store.get()
        if not ids:
            return None, None
        run = self.run_from_ids(ids)
        try:
            state = run.get_state()
        except DuneError as exc:
            self.log.warning(
                "Could not read %s started by an earlier try (%s); submitting anew.", run.label, exc
            )
            return None, None
        if state.outcome is RunOutcome.FAILED:
            self.log.info(
                "%s started by an earlier try failed (%s); submitting anew.", run.label, state.summary
            )
            return None, None
        verb = "finished" if state.outcome is RunOutcome.SUCCEEDED else "is still running"
        self.log.info(
            "Reconnecting to %s started by an earlier try: it %s (%s).", run.label, verb, state.summary
        )
        return run, state

    def end_wait(self, run: RemoteRun, event: Mapping[str, Any], context: Context) -> None:
        self._remote_run = run
        if not event.get("unreadable"):
            # The run's end is known. When its status could not be read, the run may still be
            # going: keep the record so that a retry reconnects instead of starting another.
            resume_store_for(context).forget()
        if event.get("status") == "timeout":
            self._cancel(run, "its timeout ended the wait")
        finish_wait(run, event, context, self.log)

    def complete_from_event(self, context: Context, event: Mapping[str, Any]) -> RemoteRun:
        run = self.run_from_ids(event)
        self.end_wait(run, event, context)
        return run

    def on_kill(self) -> None:
        if self._remote_run is not None:
            self._cancel(self._remote_run, "the task was killed")

    def _cancel(self, run: RemoteRun, why: str) -> None:
        if not self.cancel_on_kill:
            return
        try:
            cancelled = run.cancel()
        except DuneError as exc:
            self.log.warning("Could not cancel %s (%s): %s", run.label, why, exc)
            return
        if cancelled:
            self.log.info("Cancelled %s because %s: %s.", run.label, why, ", ".join(cancelled))
