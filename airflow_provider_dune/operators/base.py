"""What every operator that starts a remote run and waits for it shares.

A concrete operator says how to submit (:meth:`RemoteRunOperatorMixin.submit`), which
:class:`RemoteRun` the ids describe, and which trigger waits for it; this mixin does the
rest the same way for every service: record the run before and after submitting, push the
ids to XCom at once, wait in the worker or defer, turn the end event into a return value or
one clear exception, cancel on kill and on timeout.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_dune.exceptions import DuneConfigurationError, DuneError
from airflow_provider_dune.operators.deferral import (
    DEFAULT_DEFER_AFTER,
    plan_deferral,
    wait_before_deferring,
)
from airflow_provider_dune.operators.resume import RunJournal, journal_for
from airflow_provider_dune.runs.base import (
    RemoteRun,
    RunState,
    RunTimedOut,
    final_event,
    timeout_event,
    wait_for_run,
)
from airflow_provider_dune.runs.outcome import RunOutcome
from airflow_provider_dune.validation import (
    non_negative_seconds,
    optional_positive_seconds,
    positive_seconds,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_dune.triggers.base import TriggerWait

# An operator's wait ends after a day unless told otherwise: a run in a state the provider does
# not know counts as still running, and must not hold a task (or a trigger) forever.
DEFAULT_TIMEOUT = 24 * 3600.0


# The wait arguments every operator here takes, documented once (operators append it to __doc__).
WAIT_ARGS_DOC = """
    :param wait_for_termination: wait for the run to end; when False the task ends once it has
        started.
    :param deferrable: wait in the triggerer instead of holding a worker slot. Defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between status reads.
    :param timeout: seconds to wait at most (a day by default); ``None`` waits as long as the
        run goes (a warning says so unless ``execution_timeout`` bounds it). When the wait is
        deferred, ``execution_timeout`` bounds it too.
    :param cancel_on_kill: cancel the run when the task is killed or ``timeout`` /
        ``execution_timeout`` ends the wait.
    :param defer_after: with ``deferrable``, seconds to wait in the worker before deferring: a
        run that ends sooner finishes in the worker, with no trip through the triggerer.
    :param durable: record the run so that a retried task reconnects to it instead of starting
        another (Airflow's ``ResumableJobMixin`` calls this ``durable`` too). False: every try
        submits anew.
"""


class RemoteRunFailed(DuneError):
    """A remote run ended in failure, or the wait for it ended before it did."""


class SubmissionNotRecorded(DuneError):
    """An earlier try may have started a run whose id was never recorded; this try will not guess."""


def push_xcom(task: Any, context: Context, key: str, value: Any) -> None:
    """Every XCom the provider pushes goes through here, so ``do_xcom_push=False`` silences all."""
    if getattr(task, "do_xcom_push", True):
        context["ti"].xcom_push(key=key, value=value)


def finish_wait(task: Any, run: RemoteRun, event: Mapping[str, Any], context: Context) -> None:
    """Push the event's payload to XCom, then return on success or raise what went wrong."""
    for key in run.xcom_keys:
        value = event.get(key)
        # 0 credits is worth saying; an empty payload (no status was read) is not.
        if value or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            push_xcom(task, context, key, value)
    delay = event.get("budget_delay_seconds")
    if delay:
        push_xcom(task, context, "budget_delay_seconds", delay)
        task.log.info(
            "The API key's request budget made this wait's requests wait %.1fs in all for their turn "
            "(Dune's rate limit shared with every other wait of the process).",
            delay,
        )
    status = event.get("status")
    message = str(event.get("message") or f"{run.label} ended with status {status!r}.")
    if status == "success":
        task.log.info("%s", message)
        return
    if status == "error":
        details = run.failure_details(event)
        if details:
            message = f"{message}\n{details}"
    raise RemoteRunFailed(message)


def _will_retry(context: Context) -> bool:
    """Whether Airflow retries this task instance if this try fails (Airflow's own rule:
    retries set and tries left)."""
    ti = context.get("ti")
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    if not isinstance(try_number, int) or not isinstance(max_tries, int):
        return False
    return try_number <= max_tries


def _may_have_started(exc: BaseException) -> bool:
    """Whether a failed submission may still have started the run (anything not known safe)."""
    if isinstance(exc, DuneConfigurationError):
        return False
    return bool(getattr(exc, "may_have_started", True))


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
    defer_after: float
    durable: bool
    run_id_key: str
    log: Any
    _remote_run: RemoteRun | None = None

    if TYPE_CHECKING:
        # BaseOperator's, which the concrete operator also inherits.
        def defer(
            self,
            *,
            trigger: BaseTrigger,
            method_name: str,
            kwargs: dict[str, Any] | None = None,
            timeout: timedelta | int | float | None = None,
        ) -> NoReturn: ...

    def _set_wait_options(
        self,
        wait_for_termination: bool,
        deferrable: bool,
        poll_interval: float,
        timeout: float | None,
        cancel_on_kill: bool,
        defer_after: float = DEFAULT_DEFER_AFTER,
        durable: bool = True,
    ) -> None:
        """Check and keep how the operator waits for the run it starts."""
        poll_interval = positive_seconds(poll_interval, "poll_interval")
        timeout = optional_positive_seconds(timeout, "timeout")
        defer_after = non_negative_seconds(defer_after, "defer_after")
        self.wait_for_termination = wait_for_termination
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill
        self.defer_after = defer_after
        self.durable = durable

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

    # ------------------------------------------------------------------ OpenLineage

    #: The ``source`` of the run's OpenLineage ``externalQuery`` facet, and its own facet's key.
    lineage_source: str = "dune"
    _lineage_event: Mapping[str, Any] | None = None

    def lineage_views(self, event: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Full names of the materialized views the task read and wrote, from its end event."""
        return [], []

    def lineage_sql(self) -> str | None:
        """The SQL the task ran, for OpenLineage's SQL job facet (ad-hoc SQL only)."""
        return None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage for Airflow's listener (``apache-airflow-providers-openlineage``): the
        views read and written, the SQL, the run's ids and credits. See docs/lineage.md."""
        # Imported here: without the openlineage extra nothing of OpenLineage is ever loaded.
        from airflow_provider_dune.lineage import operator_lineage

        return operator_lineage(self, self._remote_run, self._lineage_event or {})

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """The same for a failed task: what it ran, cost and refreshed before it failed."""
        return self.get_openlineage_facets_on_complete(task_instance)

    def link_xcoms(self, run: RemoteRun) -> Mapping[str, str]:
        """XComs behind the operator's extra links (the query's page on dune.com, the run in
        Maia), pushed as soon as the run is known."""
        return {}

    @abstractmethod
    def make_trigger(self, run: RemoteRun, wait: TriggerWait) -> BaseTrigger:
        """The trigger that waits for ``run``; ``wait`` goes into its kwargs as it is."""

    def resubmit(self, context: Context, failed: RemoteRun, state: RunState) -> RemoteRun:
        """Start the work again after an earlier try's run failed (``state``): by default all of
        it; a pipeline operator submits only the nodes that did not succeed."""
        return self.submit(context)

    def reuse(self, context: Context) -> RemoteRun | None:
        """A finished run to use instead of submitting (a fresh enough result), or ``None``."""
        return None

    def keeps_failed_runs(self) -> bool:
        """Whether a failed run's record is kept for :meth:`resubmit` of the next try."""
        return False

    def run_and_wait(self, context: Context) -> RemoteRun:
        journal = journal_for(context, durable=self.durable)
        run, state, failed = self._resume(journal)
        if run is None and failed is None:
            run, state = self._reused(context)
        if run is None:
            run = self._submit_and_record(context, journal, failed)
        self._remote_run = run
        # On every try, reconnected or not: the links must work for the try a person looks at.
        for key, value in {**self.link_xcoms(run), **run.ids}.items():
            push_xcom(self, context, key, value)
        if state is not None and state.outcome is RunOutcome.SUCCEEDED:
            self.conclude(run, final_event(run, state), context)
            return run
        if not self.wait_for_termination:
            state = run.get_state()
            for key in run.xcom_keys:
                push_xcom(self, context, key, state.payload.get(key))
            # The task is done with the run: what happens to it now is not this task's business.
            journal.forget()
            return run
        if self.timeout is None and getattr(self, "execution_timeout", None) is None:
            self.log.warning(
                "This wait has no end: timeout=None and no execution_timeout. If %s never ends (or "
                "reports a state the provider does not know), the task waits forever. Set timeout "
                "or execution_timeout to bound it.",
                run.label,
            )
        wait_ends = time.time() + self.timeout if self.timeout is not None else None
        if self.deferrable:
            event = final_event(run, self._defer_unless_quick(run, context, wait_ends))
        else:
            try:
                state = wait_for_run(
                    run, poll_interval=self.poll_interval, timeout=self.timeout, log=self.log
                )
                event = final_event(run, state)
            except RunTimedOut as exc:
                event = timeout_event(run, exc.waited, exc.last)
        self.conclude(run, event, context)
        return run

    def _reused(self, context: Context) -> tuple[RemoteRun | None, RunState | None]:
        """:meth:`reuse`'s run with its end state, when that run did succeed."""
        run = self.reuse(context)
        state = run.get_state() if run is not None else None
        if run is None or state is None or state.outcome is not RunOutcome.SUCCEEDED:
            return None, None
        return run, state

    def _defer_unless_quick(self, run: RemoteRun, context: Context, wait_ends: float | None) -> RunState:
        """Wait ``defer_after`` seconds in the worker; return the end state if the run ended, else defer."""
        grace = self.defer_after if self.timeout is None else min(self.defer_after, self.timeout)
        state = wait_before_deferring(run, seconds=grace, poll_interval=self.poll_interval, log=self.log)
        if state is not None:
            self.log.info("%s ended within defer_after=%gs: finished in the worker.", run.label, grace)
            return state
        plan = plan_deferral(self, context, poll_interval=self.poll_interval, wait_ends=wait_ends)
        self.defer(
            trigger=self.make_trigger(run, plan.wait), method_name="execute_complete", timeout=plan.timeout
        )

    def _submit_and_record(
        self, context: Context, journal: RunJournal, failed: tuple[RemoteRun, RunState] | None = None
    ) -> RemoteRun:
        """Submit (or :meth:`resubmit` after ``failed``), with the record written before (intent)
        and after (ids) the request."""
        journal.submitting()
        try:
            run = self.submit(context) if failed is None else self.resubmit(context, *failed)
        except BaseException as exc:
            if not _may_have_started(exc):
                # Refused before any work started: nothing to reconnect to, nothing to guard.
                journal.forget()
            raise
        try:
            journal.started(run.ids)
        except Exception as exc:
            # Unrecorded, the run would be invisible to a retry, which would start another.
            self.log.error(
                "Could not record %s (%s); cancelling it so that it does not run unseen.", run.label, exc
            )
            self._cancel(run, "it could not be recorded", always=True)
            raise
        self.log.info("Started %s.", run.label)
        return run

    def _resume(
        self, journal: RunJournal
    ) -> tuple[RemoteRun | None, RunState | None, tuple[RemoteRun, RunState] | None]:
        """The run an earlier try of this task started, if it is still worth reconnecting to;
        else, when that run is known to have failed, it and its state, for :meth:`resubmit`.

        Submitting anew is safe only when that run is known to have failed; anything less
        certain fails this try and keeps the record, as Airflow's ``ResumableJobMixin`` does.
        """
        record = journal.get()
        if record is None:
            return None, None, None
        if record.ids is None:
            raise SubmissionNotRecorded(
                "An earlier try of this task sent the request that starts its run (at "
                f"{record.since or 'an unknown time'}) but never recorded the answer: the run may have "
                "started, and may be billed. To avoid "
                "running it twice this try does not submit again. Check the service's UI (dune.com, "
                f"or Maia's pipeline runs); then, to let the task submit anew, delete {journal.where()} "
                "and clear the task."
            )
        run = self.run_from_ids(record.ids)
        try:
            state = run.get_state()
        except DuneError as exc:
            raise RemoteRunFailed(
                f"Could not read the state of {run.label}, started by an earlier try of this task ({exc}). "
                "It may still be running, so this try does not submit another; the record is kept and "
                "the next try reconnects to it."
            ) from exc
        if state.outcome is RunOutcome.FAILED:
            self.log.info(
                "%s started by an earlier try failed (%s); submitting anew.", run.label, state.summary
            )
            return None, None, (run, state)
        verb = "finished" if state.outcome is RunOutcome.SUCCEEDED else "is still running"
        self.log.info(
            "Reconnecting to %s started by an earlier try: it %s (%s).", run.label, verb, state.summary
        )
        return run, state, None

    def conclude(self, run: RemoteRun, event: Mapping[str, Any], context: Context) -> None:
        """End the task from the wait's end event, and forget the record once nothing needs it.

        The record is forgotten when the run failed (a retry submits anew anyway), unless the
        operator :meth:`keeps_failed_runs` and Airflow will retry the task: that retry then
        reruns only what failed. It is forgotten after :meth:`end_wait` returned, i.e. after the
        task's last side effect. It is kept when the wait ended without knowing the run's end
        (unreadable status, timeout), and when a step after a successful run failed: the retry
        then reconnects to the finished run instead of paying for it again.
        """
        journal = journal_for(context, durable=self.durable)
        failed = event.get("status") == "error" and not event.get("unreadable")
        if failed and not (self.keeps_failed_runs() and _will_retry(context)):
            self._forget(journal)
        self.end_wait(run, event, context)
        self._forget(journal)

    def _forget(self, journal: RunJournal) -> None:
        try:
            journal.forget()
        except Exception as exc:
            # Not worth failing a task whose run ended: a stale record only makes a later
            # clear of this task reconnect to the finished run.
            self.log.warning("Could not remove the record of the run at %s: %s", journal.where(), exc)

    def end_wait(self, run: RemoteRun, event: Mapping[str, Any], context: Context) -> None:
        """Turn the end event into XCom and the task's outcome; subclasses add what follows success."""
        self._remote_run = run
        self._lineage_event = event
        if event.get("status") == "timeout":
            self._cancel(run, "its timeout ended the wait")
        finish_wait(self, run, event, context)

    def complete_from_event(self, context: Context, event: Mapping[str, Any]) -> RemoteRun:
        run = self.run_from_ids(event)
        self.conclude(run, run.complete_event(event), context)
        return run

    def on_kill(self) -> None:
        if self._remote_run is not None:
            self._cancel(self._remote_run, "the task was killed")

    def _cancel(self, run: RemoteRun, why: str, *, always: bool = False) -> None:
        if not (self.cancel_on_kill or always):
            return
        try:
            cancelled = run.cancel()
        except DuneError as exc:
            self.log.warning("Could not cancel %s (%s): %s", run.label, why, exc)
            return
        if cancelled:
            self.log.info("Cancelled %s because %s: %s.", run.label, why, ", ".join(cancelled))
