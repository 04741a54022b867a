"""A query's latest result (``GET /v1/query/{query_id}/results``): reuse it when fresh, or wait
until it is.

Dune keeps each query's latest result and serves it without running the query (no execution
credits). Freshness is the age of that result: how long ago its execution ended.

* :func:`fresh_result` decides, for a task about to execute a query, whether the latest result
  is recent enough to use instead, and says so in the log.
* :class:`ReusedResultRun` is that reused execution seen as a finished run: the task ends
  through the same success path (XCom, rows) as one that executed, at no cost.
* :class:`DuneLatestResultRun` is "the query's latest result is fresh" as a run to wait for,
  for the sensor and its trigger: it succeeds once a fresh result exists, and never fails.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

from airflow_provider_dune.exceptions import DuneApiError
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.models.dune import ExecutionStatus, ResultPage
from airflow_provider_dune.runs.base import RemoteRun, RunState
from airflow_provider_dune.runs.dune import DuneExecutionRun
from airflow_provider_dune.runs.outcome import RunOutcome

# The XCom that says whether a task reused a result or executed its query.
RESULT_SOURCE_KEY = "result_source"
REUSED, EXECUTED = "reused", "executed"


def latest_result(hook: DuneHook, query_id: int | str) -> ResultPage | None:
    """The query's latest result, or ``None`` when it has none (Dune answers 404)."""
    try:
        return hook.get_latest_result(query_id)
    except DuneApiError as exc:
        if exc.status_code == 404:
            return None
        raise


def age_of(page: ResultPage | None, now: datetime | None = None) -> float | None:
    """Seconds since the result's execution ended; ``None`` for no complete result."""
    ended = page.ended_at() if page is not None and page.is_complete else None
    if ended is None:
        return None
    return max(0.0, ((now or datetime.now(timezone.utc)) - ended).total_seconds())


def fresh_result(hook: DuneHook, query_id: int | str, max_age: float, log: Any) -> ResultPage | None:
    """The latest result when it ended at most ``max_age`` seconds ago, else ``None``; logged."""
    page = latest_result(hook, query_id)
    age = age_of(page)
    if page is None or age is None:
        log.info("Query %s has no complete latest result: executing it.", query_id)
        return None
    where = f"execution {page.execution_id}, ended {page.execution_ended_at}, {age:.0f}s ago"
    if age > max_age:
        log.info(
            "The latest result of query %s (%s) is older than max_result_age=%gs: executing the query.",
            query_id,
            where,
            max_age,
        )
        return None
    log.info(
        "The latest result of query %s (%s) is within max_result_age=%gs: reusing it, no new "
        "execution and no execution credits.",
        query_id,
        where,
        max_age,
    )
    return page


class ReusedResultRun(DuneExecutionRun):
    """An execution this task did not start but reuses: finished, and free for this task."""

    def state_of(self, status: ExecutionStatus) -> RunState:
        state = super().state_of(status)
        message = f"Reused the latest result of query {status.query_id}: {state.message}"
        # Paid for by whoever ran it: this task used no execution credits.
        return RunState(state.outcome, state.summary, message, {**state.payload, "credits_used": 0})


class DuneLatestResultRun(RemoteRun):
    """ "The latest result of ``query_id`` is fresh": ended at most ``max_age`` seconds before the
    read, or after ``newer_than``. Running until then; it never fails (a failed or missing
    result only means the wait goes on)."""

    kind = "Dune latest result of query"
    xcom_keys = ("latest_result",)
    empty_payload: ClassVar[Mapping[str, Any]] = {"latest_result": None}

    def __init__(
        self,
        hook: DuneHook,
        query_id: int | str,
        *,
        max_age: float | None = None,
        newer_than: datetime | None = None,
    ) -> None:
        self.hook = hook
        self.query_id = query_id
        self.max_age = max_age
        self.newer_than = newer_than

    @property
    def ids(self) -> dict[str, Any]:
        return {"query_id": self.query_id}

    def state_of(self, page: ResultPage | None) -> RunState:
        ended = page.ended_at() if page is not None and page.is_complete else None
        wanted = (
            f"newer than {self.newer_than.isoformat()}"
            if self.newer_than
            else f"at most {self.max_age:g}s old"
        )
        if page is None or ended is None:
            return RunState(RunOutcome.RUNNING, f"no complete result yet (want one {wanted})", "")
        age = max(0.0, time.time() - ended.timestamp())
        fresh = ended > self.newer_than if self.newer_than else age <= (self.max_age or 0.0)
        summary = f"latest result ended {page.execution_ended_at} ({age:.0f}s ago), want one {wanted}"
        if not fresh:
            return RunState(RunOutcome.RUNNING, summary, "")
        payload = {
            "latest_result": {
                "execution_id": page.execution_id,
                "execution_ended_at": page.execution_ended_at,
                "total_row_count": page.total_row_count,
            }
        }
        message = f"Query {self.query_id} has a fresh result: execution {page.execution_id}, {summary}."
        return RunState(RunOutcome.SUCCEEDED, summary, message, payload)

    def get_state(self) -> RunState:
        return self.state_of(latest_result(self.hook, self.query_id))

    async def aget_state(self) -> RunState:
        try:
            page: ResultPage | None = await self.hook.aget_latest_result(self.query_id)
        except DuneApiError as exc:
            if exc.status_code != 404:
                raise
            page = None
        return self.state_of(page)

    def cancel(self) -> list[str]:
        return []  # nothing of this wait runs on Dune

    async def acancel(self) -> list[str]:
        return []

    def budget_delay(self) -> float:
        return self.hook.budget_delay_seconds
