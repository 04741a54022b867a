"""One sensor shape for every kind of remote run started elsewhere."""

from __future__ import annotations

import time
from abc import abstractmethod
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator

from airflow_provider_dune.operators.base import finish_wait
from airflow_provider_dune.operators.deferral import DEFAULT_DEFER_AFTER, plan_deferral, wait_before_deferring
from airflow_provider_dune.runs.base import RemoteRun, final_event
from airflow_provider_dune.validation import non_negative_seconds, positive_seconds

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_dune.triggers.base import TriggerWait


def _seconds(value: float | timedelta | None) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return None if value is None else float(value)


class RemoteRunSensor(BaseSensorOperator):
    """Pokes a remote run through its adapter; in deferrable mode hands the wait to its trigger.

    ``poke`` is False while the run goes on, True when it succeeded, and raises with the
    run's failure message when it failed. The sensor did not start the run, so it never
    cancels it. In deferrable mode it first watches the run in the worker for ``defer_after``
    seconds, so a run that is about to end never makes the trip through the triggerer; the
    deferred wait is bounded by the sensor's ``timeout`` and by ``execution_timeout``.

    :param defer_after: with ``deferrable``, seconds to wait in the worker before deferring.
    """

    deferrable: bool

    def __init__(self, *, defer_after: float = DEFAULT_DEFER_AFTER, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Airflow refuses negative values only: NaN and infinity pass its check and never end a wait.
        positive_seconds(self.poke_interval, "poke_interval")
        positive_seconds(self.timeout, "timeout")
        defer_after = non_negative_seconds(defer_after, "defer_after")
        self.defer_after = defer_after

    @abstractmethod
    def remote_run(self) -> RemoteRun: ...

    @abstractmethod
    def make_trigger(self, wait: TriggerWait) -> BaseTrigger:
        """The trigger that watches the run; ``wait`` goes into its kwargs as it is."""

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        timeout = _seconds(self.timeout)
        wait_ends = time.time() + timeout if timeout else None
        poll_interval = _seconds(self.poke_interval) or 10.0
        run = self.remote_run()
        grace = self.defer_after if not timeout else min(self.defer_after, timeout)
        state = wait_before_deferring(run, seconds=grace, poll_interval=poll_interval, log=self.log)
        if state is not None:
            finish_wait(self, run, final_event(run, state), context)
            return None
        plan = plan_deferral(self, context, poll_interval=poll_interval, wait_ends=wait_ends)
        self.defer(trigger=self.make_trigger(plan.wait), method_name="execute_complete", timeout=plan.timeout)

    def poke(self, context: Context) -> bool:
        run = self.remote_run()
        state = run.get_state()
        self.log.info("%s: %s.", run.label, state.summary)
        if not state.outcome.is_terminal:
            return False
        finish_wait(self, run, final_event(run, state), context)
        return True

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        if event.get("status") == "timeout":
            # Same exception as a poke-mode timeout, so soft_fail and sensor retries behave alike.
            raise AirflowSensorTimeout(event.get("message", "Sensor timed out."))
        run = self.remote_run()
        finish_wait(self, run, run.complete_event(event), context)
