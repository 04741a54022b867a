"""Deferred waiting on a Dune pipeline, in the triggerer's event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_dune.exceptions import DuneError
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.models.dune import PipelineStatus
from airflow_provider_dune.models.events import error_event, event_from_status, timeout_event


class DunePipelineTrigger(BaseTrigger):
    """
    Polls a Dune pipeline execution until it finishes, then fires one event.

    It keeps no state beyond its arguments, so a trigger re-created after a triggerer
    restart simply carries on polling the same pipeline. The API key is never among its
    arguments: the hook looks it up (asynchronously) from the connection.

    :param pipeline_execution_id: the pipeline to watch.
    :param dune_conn_id: the Airflow connection holding the API key.
    :param poll_interval: seconds between status reads.
    :param end_time: epoch seconds after which the wait ends with a ``timeout`` event.
    """

    def __init__(
        self,
        pipeline_execution_id: str,
        dune_conn_id: str = DuneHook.default_conn_name,
        poll_interval: float = 10,
        end_time: float | None = None,
    ) -> None:
        super().__init__()
        self.pipeline_execution_id = pipeline_execution_id
        self.dune_conn_id = dune_conn_id
        self.poll_interval = poll_interval
        self.end_time = end_time

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "pipeline_execution_id": self.pipeline_execution_id,
                "dune_conn_id": self.dune_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = DuneHook(self.dune_conn_id)
        pid = self.pipeline_execution_id
        started = time.time()
        last: PipelineStatus | None = None
        last_progress = ""
        try:
            while True:
                last = await hook.aget_pipeline_status(pid)
                progress = f"{last.status}, {last.progress()}"
                if progress != last_progress:
                    self.log.info("Dune pipeline %s: %s.", pid, progress)
                    last_progress = progress
                if last.is_terminal:
                    yield TriggerEvent(dict(event_from_status(last)))
                    return
                now = time.time()
                if self.end_time is not None and now >= self.end_time:
                    yield TriggerEvent(dict(timeout_event(pid, now - started, last)))
                    return
                sleep = self.poll_interval
                if self.end_time is not None:
                    sleep = min(sleep, max(0.0, self.end_time - now))
                await asyncio.sleep(sleep)
        except DuneError as exc:
            # Retries already happened in the hook; what reaches here will not heal by waiting.
            yield TriggerEvent(dict(error_event(pid, str(exc))))
