"""One deferrable wait for every kind of remote run."""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_dune.exceptions import DuneError
from airflow_provider_dune.runs.base import RemoteRun, poll_run


class TriggerWait(TypedDict):
    """How a trigger waits, whatever it watches: the part of its kwargs the waiting task decides.

    :param poll_interval: seconds between status reads.
    :param end_time: epoch seconds at which the wait ends with a ``timeout`` event (``None``: never).
    :param fire_not_before: epoch seconds before which the end event is held back (``None``: no hold);
        see :mod:`airflow_provider_dune.operators.deferral` for the Airflow race this guards.
    """

    poll_interval: float
    end_time: float | None
    fire_not_before: float | None


class RemoteRunTrigger(BaseTrigger):
    """Polls one remote run until it ends, then fires exactly one event.

    Subclasses only say which run they watch (:meth:`remote_run`) and serialize the ids
    that re-create them, plus :meth:`wait_kwargs`. Nothing else is kept, so a trigger
    re-created after a triggerer restart carries on where the old one stopped; every time in
    its kwargs is wall-clock, so it means the same after a restart. Credentials are never
    among the kwargs: the hook reads them from the connection, asynchronously.
    """

    def __init__(
        self,
        *,
        poll_interval: float,
        end_time: float | None,
        cancel_on_kill: bool = True,
        fire_not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill
        self.fire_not_before = fire_not_before

    @abstractmethod
    def remote_run(self) -> RemoteRun: ...

    def wait_kwargs(self) -> dict[str, Any]:
        """The kwargs every such trigger serializes besides its ids."""
        return {
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "fire_not_before": self.fire_not_before,
            "cancel_on_kill": self.cancel_on_kill,
        }

    async def on_kill(self) -> None:
        """A user marked the deferred task failed/success or cleared it: stop the remote work.

        Airflow (3.2+) calls this only for such user actions, never on a triggerer restart,
        so a restarted triggerer never cancels work that should go on.
        """
        if not self.cancel_on_kill:
            return
        run = self.remote_run()
        try:
            cancelled = await run.acancel()
        except DuneError as exc:
            self.log.warning("Could not cancel %s after its task was killed: %s", run.label, exc)
            return
        self.log.info(
            "Cancelled %s because its task was killed: %s.",
            run.label,
            ", ".join(cancelled) or "nothing running",
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        run = self.remote_run()
        event = await poll_run(run, poll_interval=self.poll_interval, end_time=self.end_time, log=self.log)
        hold = (self.fire_not_before or 0.0) - time.time()
        if hold > 0:
            self.log.info(
                "%s ended soon after its task deferred: holding the event %.1fs so that Airflow's "
                "scheduler sees the deferral first (apache/airflow#71580; docs/reliability.md).",
                run.label,
                hold,
            )
            await asyncio.sleep(hold)
        yield TriggerEvent(event)
