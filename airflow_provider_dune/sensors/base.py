"""One sensor shape for every kind of remote run started elsewhere."""

from __future__ import annotations

import time
from abc import abstractmethod
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator

from airflow_provider_dune.operators.base import finish_wait
from airflow_provider_dune.runs.base import RemoteRun, final_event
from airflow_provider_dune.validation import positive_seconds

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.triggers.base import BaseTrigger


def _seconds(value: float | timedelta | None) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return None if value is None else float(value)


class RemoteRunSensor(BaseSensorOperator):
    """Pokes a remote run through its adapter; in deferrable mode hands the wait to its trigger.

    ``poke`` is False while the run goes on, True when it succeeded, and raises with the
    run's failure message when it failed. The sensor did not start the run, so it never
    cancels it.
    """

    deferrable: bool

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Airflow refuses negative values only: NaN and infinity pass its check and never end a wait.
        positive_seconds(self.poke_interval, "poke_interval")
        positive_seconds(self.timeout, "timeout")

    @abstractmethod
    def remote_run(self) -> RemoteRun: ...

    @abstractmethod
    def make_trigger(self, poll_interval: float, end_time: float | None) -> BaseTrigger: ...

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One cheap read first: a run that already ended needs no trip to the triggerer.
        if self.poke(context):
            return None
        timeout = _seconds(self.timeout)
        self.defer(
            trigger=self.make_trigger(
                poll_interval=_seconds(self.poke_interval) or 10.0,
                end_time=time.time() + timeout if timeout else None,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> bool:
        run = self.remote_run()
        state = run.get_state()
        self.log.info("%s: %s.", run.label, state.summary)
        if not state.outcome.is_terminal:
            return False
        finish_wait(run, final_event(run, state), context, self.log)
        return True

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        if event.get("status") == "timeout":
            # Same exception as a poke-mode timeout, so soft_fail and sensor retries behave alike.
            raise AirflowSensorTimeout(event.get("message", "Sensor timed out."))
        finish_wait(self.remote_run(), event, context, self.log)
