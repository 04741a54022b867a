"""Query executions: their lifecycle (pending -> executing -> terminal), status and cancel.

All mutation happens on the server's event loop; SQL runs in the engine's worker threads.

What is kept is bounded: past ``max_executions`` the oldest finished executions are forgotten
(404 from then on), and past ``max_result_bytes`` of stored results the oldest results are
dropped and their executions read ``QUERY_STATE_EXPIRED``, as a Dune result does after 90 days.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_dune.emulator.ids import new_ulid
from airflow_provider_dune.emulator.sql_engine import QueryInterrupted, ResultInfo, SqlEngine, SqlJob
from airflow_provider_dune.emulator.sql_errors import SqlError

log = logging.getLogger(__name__)

PENDING = "QUERY_STATE_PENDING"
EXECUTING = "QUERY_STATE_EXECUTING"
COMPLETED = "QUERY_STATE_COMPLETED"
COMPLETED_PARTIAL = "QUERY_STATE_COMPLETED_PARTIAL"
FAILED = "QUERY_STATE_FAILED"
# Dune's docs spell it CANCELED; every official client (Python, Go, TypeScript) expects this.
CANCELLED = "QUERY_STATE_CANCELLED"
EXPIRED = "QUERY_STATE_EXPIRED"
TERMINAL_STATES = frozenset({COMPLETED, COMPLETED_PARTIAL, FAILED, CANCELLED, EXPIRED})
RESULT_STATES = frozenset({COMPLETED, COMPLETED_PARTIAL})
RESULT_TTL = timedelta(days=90)
# Part of the simulated duration spent queued; the rest is spent executing.
PENDING_SHARE = 0.2
# Dune's documented price of a refresh or execution per engine tier.
CREDITS_PER_TIER = {"medium": 10, "large": 20}
CREDIT_LIMIT_MESSAGE = (
    "This api request would exceed your configured limits per billing cycle. Please visit your "
    "settings on dune.com and adjust your limits to continue usage."
)


def api_timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Execution:
    execution_id: str
    query_id: int
    sql: str
    performance: str
    duration: float
    submitted_at: datetime
    state: str = PENDING
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancelled_at: datetime | None = None
    error: SqlError | None = None
    result: ResultInfo | None = None
    materialize_view: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    job: SqlJob = field(default_factory=SqlJob)

    @property
    def is_finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def expires_at(self) -> datetime:
        return self.submitted_at + RESULT_TTL

    def timing_fields(self) -> dict[str, Any]:
        """The timestamps shared by the status and results bodies; unset ones are left out."""
        body: dict[str, Any] = {
            "submitted_at": api_timestamp(self.submitted_at),
            "expires_at": api_timestamp(self.expires_at),
        }
        for key, moment in (
            ("execution_started_at", self.started_at),
            ("execution_ended_at", self.ended_at),
            ("cancelled_at", self.cancelled_at),
        ):
            if moment is not None:
                body[key] = api_timestamp(moment)
        return body

    def result_metadata(self, row_count: int | None = None) -> dict[str, Any] | None:
        if self.result is None:
            return None
        info = self.result
        pending_ms = _millis(self.submitted_at, self.started_at)
        execution_ms = _millis(self.started_at, self.ended_at)
        rows = info.row_count if row_count is None else row_count
        return {
            "column_names": info.column_names,
            "column_types": info.column_types,
            "row_count": rows,
            "result_set_bytes": info.result_set_bytes if row_count is None else _share(info, rows),
            "total_row_count": info.row_count,
            "total_result_set_bytes": info.result_set_bytes,
            "datapoint_count": rows * len(info.column_names),
            "pending_time_millis": pending_ms,
            "execution_time_millis": execution_ms,
        }

    @property
    def cost_credits(self) -> int:
        return CREDITS_PER_TIER.get(self.performance, CREDITS_PER_TIER["medium"])

    def to_results_envelope(self) -> dict[str, Any]:
        """What the results endpoints say of an execution, before (or without) its rows."""
        body: dict[str, Any] = {
            "execution_id": self.execution_id,
            "query_id": self.query_id,
            "is_execution_finished": self.is_finished,
            "state": self.state,
            **self.timing_fields(),
        }
        if self.error is not None:
            body["error"] = self.error.to_api(self.execution_id)
        return body

    def to_status(self) -> dict[str, Any]:
        body = self.to_results_envelope()
        body["execution_cost_credits"] = self.cost_credits if self.is_finished else 0
        metadata = self.result_metadata() if self.state in RESULT_STATES else None
        if metadata is not None:
            body["result_metadata"] = metadata
        return body


def _millis(start: datetime | None, end: datetime | None) -> int:
    if start is None or end is None:
        return 0
    return max(0, int((end - start).total_seconds() * 1000))


def _share(info: ResultInfo, rows: int) -> int:
    return info.result_set_bytes * rows // info.row_count if info.row_count else 0


class ExecutionService:
    def __init__(
        self,
        engine: SqlEngine,
        execution_seconds: float,
        max_result_rows: int | None = None,
        credit_limit: float | None = None,
        *,
        max_executions: int = 10_000,
        max_result_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.engine = engine
        self.execution_seconds = execution_seconds
        self.max_result_rows = max_result_rows
        self.max_executions = max_executions
        self.max_result_bytes = max_result_bytes
        # Credits this billing cycle may use; None: no limit. Every submitted execution is charged.
        self.credit_limit = credit_limit
        self.credits_used = 0.0
        self.executions: dict[str, Execution] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Finished executions, in the order they finished: the first to forget.
        self._finished: deque[str] = deque()
        # Executions whose result table is kept, oldest first, with its result_set_bytes.
        self._results: OrderedDict[str, int] = OrderedDict()
        self._result_bytes = 0

    def get(self, execution_id: str) -> Execution | None:
        return self.executions.get(execution_id)

    def latest_result(self, query_id: int) -> Execution | None:
        """The query's most recent execution that has a result (what Dune serves without running it)."""
        for execution in reversed(self.executions.values()):
            if execution.query_id == query_id and execution.state in RESULT_STATES:
                return execution
        return None

    def can_afford(self, performances: list[str]) -> bool:
        """Whether starting executions on these tiers stays within the credit limit."""
        if self.credit_limit is None:
            return True
        cost = sum(CREDITS_PER_TIER.get(tier, CREDITS_PER_TIER["medium"]) for tier in performances)
        return self.credits_used + cost <= self.credit_limit

    def submit(
        self,
        query_id: int,
        sql: str,
        performance: str = "medium",
        duration: float | None = None,
        materialize_view: str | None = None,
    ) -> Execution:
        execution = Execution(
            execution_id=new_ulid(),
            query_id=query_id,
            sql=sql,
            performance=performance,
            duration=self.execution_seconds if duration is None else duration,
            submitted_at=_now(),
            materialize_view=materialize_view,
        )
        self.credits_used += execution.cost_credits
        self.executions[execution.execution_id] = execution
        task = asyncio.get_running_loop().create_task(self._run(execution))
        # Hold a reference: the loop keeps only weak references to tasks.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return execution

    def cancel(self, execution_id: str) -> bool:
        execution = self.executions.get(execution_id)
        if execution is None or execution.is_finished:
            return False
        moment = _now()
        execution.state = CANCELLED
        execution.cancelled_at = moment
        execution.ended_at = moment
        execution.job.interrupt()
        execution.finished.set()
        return True

    def expire(self, execution_id: str) -> bool:
        """Test hook: make a finished result unavailable as if its 90 days had passed."""
        execution = self.executions.get(execution_id)
        if execution is None or execution.state not in RESULT_STATES:
            return False
        execution.state = EXPIRED
        return True

    async def shutdown(self) -> None:
        # Interrupt running SQL first so the worker threads are free before DuckDB closes.
        for execution in self.executions.values():
            if not execution.is_finished:
                execution.job.interrupt()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _run(self, execution: Execution) -> None:
        await self._execute(execution)
        self._finished.append(execution.execution_id)
        await self._enforce_bounds(execution)

    async def _enforce_bounds(self, finished: Execution) -> None:
        """Keep ``finished``'s result, then drop the oldest results and executions past the bounds."""
        if finished.result is not None and finished.state in RESULT_STATES:
            self._results[finished.execution_id] = finished.result.result_set_bytes
            self._result_bytes += finished.result.result_set_bytes
        dropped: list[Execution] = []
        # The newest result is always kept, however big: it was just asked for.
        while self._result_bytes > self.max_result_bytes and len(self._results) > 1:
            execution_id = next(iter(self._results))
            execution = self.executions[execution_id]
            if execution.state in RESULT_STATES:
                execution.state = EXPIRED
            dropped.append(execution)
            self._forget_result(execution_id)
        while len(self.executions) > self.max_executions and self._finished:
            execution = self.executions.pop(self._finished.popleft())
            if execution.execution_id in self._results:
                dropped.append(execution)
                self._forget_result(execution.execution_id)
        for execution in dropped:
            assert execution.result is not None
            await self.engine.call(self.engine.drop_result, execution.result.table)

    def _forget_result(self, execution_id: str) -> None:
        self._result_bytes -= self._results.pop(execution_id)

    async def _execute(self, execution: Execution) -> None:
        pending_seconds = execution.duration * PENDING_SHARE
        await asyncio.sleep(pending_seconds)
        if execution.state == CANCELLED:
            return
        execution.state = EXECUTING
        execution.started_at = _now()
        began = time.monotonic()
        table = f"r_{execution.execution_id}"
        try:
            outcome = await self.engine.call_capped(
                execution.job, self.engine.run_to_table, execution.sql, table, self.max_result_rows
            )
        except QueryInterrupted:
            return
        except Exception as exc:  # the emulator must keep serving whatever DuckDB raises
            log.exception("execution %s crashed", execution.execution_id)
            outcome = SqlError(f"Internal error: {exc}")
        remaining = execution.duration - pending_seconds - (time.monotonic() - began)
        if remaining > 0:
            await asyncio.sleep(remaining)
        if execution.state == CANCELLED:
            if isinstance(outcome, ResultInfo):
                await self.engine.call(self.engine.drop_result, table)
            return
        if isinstance(outcome, ResultInfo) and execution.materialize_view:
            try:
                await self.engine.call(self.engine.copy_into_view, table, execution.materialize_view)
            except Exception as exc:
                outcome = SqlError(f"Could not materialize {execution.materialize_view}: {exc}")
        execution.ended_at = _now()
        if isinstance(outcome, SqlError):
            execution.state = FAILED
            execution.error = outcome
        else:
            execution.result = outcome
            execution.state = COMPLETED_PARTIAL if outcome.truncated else COMPLETED
        execution.finished.set()
