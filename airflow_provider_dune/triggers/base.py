"""One deferrable wait for every kind of remote run."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_dune.exceptions import DuneError
from airflow_provider_dune.runs.base import RemoteRun, poll_run


class RemoteRunTrigger(BaseTrigger):
    """Polls one remote run until it ends, then fires exactly one event.

    Subclasses only say which run they watch (:meth:`remote_run`) and serialize the ids
    that re-create them. Nothing else is kept, so a trigger re-created after a triggerer
    restart carries on where the old one stopped. Credentials are never among the
    kwargs: the hook reads them from the connection, asynchronously.
    """

    def __init__(self, *, poll_interval: float, end_time: float | None, cancel_on_kill: bool = True) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill

    @abstractmethod
    def remote_run(self) -> RemoteRun: ...

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
        event = await poll_run(
            self.remote_run(), poll_interval=self.poll_interval, end_time=self.end_time, log=self.log
        )
        yield TriggerEvent(event)
