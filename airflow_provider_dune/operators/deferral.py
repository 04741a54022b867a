"""Handing a wait to the triggerer safely, for every deferrable operator and sensor.

Three things happen around ``self.defer(...)``, the same way for Dune and Maia:

* **A short wait in the worker first** (``defer_after`` seconds, 5 by default). Most Dune
  queries end in seconds: such a run ends in the worker, with no trip through the triggerer
  and back, and the task never defers at all.
* **A hold on the end event.** Airflow's scheduler can fail a deferred task whose trigger fires
  within seconds of deferring: the executor's "success" for the deferring attempt arrives
  after the trigger's event has already moved the task on, and the scheduler takes it for an
  external state change ("Executor ... reported that the task instance ... finished with state
  success, but the task instance's state attribute is queued"). Upstream: apache/airflow
  #66374 and #67287 (fixed for the scheduled and queued states in 3.2.2 / 3.3.0), #71580 and
  #72716 (running state, open as of 3.3.2). The trigger therefore holds its end event until
  ``[dune] deferral_event_hold`` seconds (10 by default) after the deferral moment; that moment
  travels in the trigger's kwargs (``fire_not_before``, wall-clock), so a restarted triggerer
  keeps the same hold. It is applied on every Airflow version: it costs only latency, and
  only to runs that end within the hold.
* **Bounds the triggerer keeps.** Airflow 3 does not apply ``execution_timeout`` to a deferred
  task (a TODO in its task runner). The wait's end time is therefore the earlier of the
  operator's own ``timeout`` and the task's ``execution_timeout`` (less a small margin, so the
  trigger's timeout event reaches the task, which cancels the run and says so), and ``defer``
  gets the rest of ``execution_timeout`` as Airflow's own backstop.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_dune.runs.base import RemoteRun, RunState, RunTimedOut, wait_for_run

if TYPE_CHECKING:
    # Only the type: the trigger module (and Airflow's) is imported when a task really defers.
    from airflow_provider_dune.triggers.base import TriggerWait

DEFAULT_DEFER_AFTER = 5.0
DEFAULT_EVENT_HOLD = 10.0
# In the worker's short wait, reads come at most this far apart, whatever the poll_interval.
_GRACE_POLL_INTERVAL = 1.0
# The trigger ends the wait this long before execution_timeout, at most, so that its event
# reaches the task (which then cancels the run) before Airflow's own deferral timeout does.
_TIMEOUT_MARGIN = 60.0


def event_hold_seconds() -> float:
    """``[dune] deferral_event_hold``: how long after deferring the trigger holds its end event."""
    from airflow.providers.common.compat.sdk import conf

    hold = conf.getfloat("dune", "deferral_event_hold", fallback=DEFAULT_EVENT_HOLD)
    return max(0.0, hold)


def wait_before_deferring(
    run: RemoteRun, *, seconds: float, poll_interval: float, log: Any
) -> RunState | None:
    """Poll in the worker for up to ``seconds``: the run's end state if it ended, else ``None``."""
    if seconds <= 0:
        state = run.get_state()
        return state if state.outcome.is_terminal else None
    try:
        return wait_for_run(
            run, poll_interval=min(poll_interval, _GRACE_POLL_INTERVAL), timeout=seconds, log=log
        )
    except RunTimedOut:
        return None


@dataclass(frozen=True)
class Deferral:
    """What ``defer`` is called with, beyond the trigger's ids.

    :param wait: the trigger's wait kwargs (interval, end time, event hold).
    :param timeout: ``defer(timeout=...)``: Airflow's own backstop, the rest of ``execution_timeout``.
    """

    wait: TriggerWait
    timeout: timedelta | None


def plan_deferral(
    task: Any,
    context: Mapping[str, Any],
    *,
    poll_interval: float,
    wait_ends: float | None,
) -> Deferral:
    """The bounds of a deferred wait, from the task's own ``timeout`` end and its ``execution_timeout``.

    :param wait_ends: epoch seconds at which the task's own ``timeout`` ends the wait, or ``None``.
    """
    now = time.time()
    end_time = wait_ends
    backstop = None
    execution_timeout = getattr(task, "execution_timeout", None)
    if isinstance(execution_timeout, timedelta):
        budget = execution_timeout.total_seconds()
        deadline = _try_started(context, default=now) + budget
        ours = deadline - min(_TIMEOUT_MARGIN, 0.1 * budget)
        end_time = ours if end_time is None else min(end_time, ours)
        backstop = timedelta(seconds=max(1.0, deadline - now))
    hold = event_hold_seconds()
    return Deferral(
        wait={
            "poll_interval": poll_interval,
            "end_time": end_time,
            "fire_not_before": now + hold if hold else None,
        },
        timeout=backstop,
    )


def _try_started(context: Mapping[str, Any], *, default: float) -> float:
    """When this try started (``execution_timeout`` counts from there), or ``default``."""
    start = getattr(context.get("ti"), "start_date", None)
    return start.timestamp() if isinstance(start, datetime) else default
