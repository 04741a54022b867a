"""The proof of "nothing lost, nothing doubled": 500 pipelines through a misbehaving API.

The local emulator faults about 20% of responses (429 with and without Retry-After, 5xx,
slow answers, dropped connections, garbled JSON). 500 pipelines run through the three
paths a DAG uses: the hook's wait (200), the deferred trigger (200, all at once in one
event loop, as the triggerer runs them) and the operator (100). Every pipeline must end in
the state the emulator itself reports, no submission may create two pipelines, and the key
never leaves its header. The figures are summarised in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from airflow_provider_dune.emulator import DuneEmulator, FaultConfig
from airflow_provider_dune.emulator.faults import SERVER_ERRORS
from airflow_provider_dune.exceptions import DuneApiError, DuneError, DuneResponseError
from airflow_provider_dune.hooks.dune import DuneHook, close_shared_async_session
from airflow_provider_dune.operators.base import RemoteRunFailed
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from airflow_provider_dune.runs.base import wait_for_run
from airflow_provider_dune.runs.dune import DunePipelineRun
from airflow_provider_dune.triggers.dune import DunePipelineTrigger
from tests.helpers import FakeTI

KEY = "fault-suite-key-0d6b2e91"
EXECUTE = "/api/v1/pipelines/execute"
FAULTS = FaultConfig(
    rate_429=0.05,
    rate_429_retry_after=0.03,
    retry_after_seconds=1,
    rate_5xx=0.06,
    rate_slow=0.03,
    slow_seconds=0.3,
    rate_drop=0.02,
    rate_malformed=0.01,
    seed=20261125,
)
# Query 1001 succeeds (2 nodes), 1002 fails on purpose, 1003 succeeds (1 node).
WORK = [{"query_id": 1001}, {"query_id": 1002}, {"query_id": 1003}]


@dataclass
class Outcome:
    path: str
    pipeline_execution_id: str | None
    status: str  # success | error | submit_error
    message: str


@pytest.fixture(scope="module")
def faulty_dune():
    with (
        DuneEmulator(api_key=KEY, execution_seconds=0.05, faults=FAULTS) as emulator,
        pytest.MonkeyPatch.context() as mp,
    ):
        conn = json.loads(emulator.airflow_conn_json())
        # Short backoff so the suite runs in seconds; the policy (what is retried) is the real one.
        conn["extra"] = {"retry_delay": 0.02, "retry_limit": 12, "retry_max_seconds": 60, "timeout": 5}
        # The injected 429s are random faults, not a limit this key runs into: a ceiling far above
        # the suite's traffic keeps the shared budget's adaptation from turning them into a crawl.
        conn["extra"].update(rate_limit_per_minute=600_000, low_rate_limit_per_minute=600_000)
        mp.setenv("AIRFLOW_CONN_DUNE_DEFAULT", json.dumps(conn))
        yield emulator


def _submit(work: dict) -> tuple[str | None, str]:
    try:
        return DuneHook().execute_pipeline(**work), ""
    except (DuneApiError, DuneResponseError) as exc:
        return None, str(exc)


def _hook_path(i: int) -> Outcome:
    pid, error = _submit(WORK[i % 3])
    if pid is None:
        return Outcome("hook", None, "submit_error", error)
    try:
        state = wait_for_run(DunePipelineRun(DuneHook(), pid), poll_interval=0.05, timeout=120, log=_quiet)
    except DuneError as exc:
        return Outcome("hook", pid, "read_error", str(exc))
    return Outcome("hook", pid, "success" if state.outcome.value == "succeeded" else "error", state.message)


def _operator_path(i: int) -> Outcome:
    ti = FakeTI()
    op = DuneRunPipelineOperator(task_id=f"t{i}", poll_interval=0.05, **WORK[i % 3])
    try:
        op.execute({"ti": ti})
        return Outcome("operator", ti.pushed["pipeline_execution_id"], "success", "")
    except RemoteRunFailed as exc:
        return Outcome("operator", ti.pushed.get("pipeline_execution_id"), "error", str(exc))
    except (DuneApiError, DuneResponseError) as exc:
        return Outcome("operator", ti.pushed.get("pipeline_execution_id"), "submit_error", str(exc))


async def _trigger_path(pids: list[str]) -> list[dict]:
    try:
        triggers = [DunePipelineTrigger(pid, poll_interval=0.05) for pid in pids]
        events = await asyncio.gather(*(anext(t.run()) for t in triggers))
        return [e.payload for e in events]
    finally:
        await close_shared_async_session()


class _Quiet:
    def info(self, *args, **kwargs):
        pass

    warning = info


_quiet = _Quiet()


def test_500_pipelines_end_right_with_no_duplicates_and_no_leaked_key(faulty_dune):
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(16) as pool:
        hook_runs = pool.map(_hook_path, range(200))
        submissions = pool.map(_submit, [WORK[i % 3] for i in range(200)])
        # Operators run on the main thread, as in a worker (Airflow 2.11's execute guard is
        # thread-local), while the hook path keeps the pool busy.
        outcomes += [_operator_path(i) for i in range(100)]
        outcomes += hook_runs
        submitted = list(submissions)
    pids = [pid for pid, _ in submitted if pid]
    outcomes += [Outcome("trigger", None, "submit_error", err) for pid, err in submitted if pid is None]
    events = asyncio.run(_trigger_path(pids))
    outcomes += [Outcome("trigger", e["pipeline_execution_id"], e["status"], e["message"]) for e in events]
    assert len(outcomes) == 500

    # Every run the provider followed ended in the state the emulator says it is in.
    # Dune's documented pipeline states end at "completed"; a failed pipeline also has an error.
    followed = [o for o in outcomes if o.pipeline_execution_id and o.status in ("success", "error")]
    expected = {"success": ("completed", False), "error": ("completed", True)}

    def emulated(pipeline_execution_id: str) -> tuple[str, bool]:
        status = faulty_dune.pipeline_status(pipeline_execution_id)
        return status["status"], bool(status.get("error"))

    mismatches = [
        (o.path, o.pipeline_execution_id, o.status, emulated(o.pipeline_execution_id))
        for o in followed
        if emulated(o.pipeline_execution_id) != expected[o.status]
    ]
    assert mismatches == []
    assert not [o for o in outcomes if o.status == "read_error"]  # reads always recovered

    # Nothing doubled: pipelines the emulator created = ids the provider got + submissions whose
    # answer was lost after the work started (the provider refused to resend those).
    log = faulty_dune.request_log
    lost_answers = sum(log.count(method="POST", path_prefix=EXECUTE, fault=f) for f in ("drop", "malformed"))
    created = faulty_dune.pipeline_execution_ids()
    provider_ids = [o.pipeline_execution_id for o in outcomes if o.pipeline_execution_id]
    assert len(set(provider_ids)) == len(provider_ids)
    assert len(created) == len(provider_ids) + lost_answers
    for o in outcomes:
        if o.status == "submit_error":
            assert "may have started" in o.message or "HTTP 429" in o.message or "gave up" in o.message

    # The key stayed in its header.
    assert log.count(key_in_url=True) == 0
    assert all(KEY not in o.message for o in outcomes)

    faulted = Counter(e.fault for e in log.entries() if e.fault)
    total = len(log)
    share = sum(faulted.values()) / total
    summary = {
        "requests": total,
        "faulted_share": round(share, 3),
        "faults": dict(faulted),
        "outcomes": dict(Counter(f"{o.path}:{o.status}" for o in outcomes)),
        "pipelines_created": len(created),
        "lost_submission_answers": lost_answers,
    }
    print("\nFAULT SUITE", json.dumps(summary, sort_keys=True))
    assert 0.15 <= share <= 0.25
    # Only submissions hit by an ambiguous fault failed, one failure per such fault: a 429 on a
    # submission was retried until it got through, a 5xx or a lost answer was not resent. (An
    # exact count, not a share: with 16 threads the seeded draws land on different requests
    # each run.)
    ambiguous = ("drop", "malformed", *SERVER_ERRORS)
    ambiguous_submissions = sum(log.count(method="POST", path_prefix=EXECUTE, fault=f) for f in ambiguous)
    assert sum(1 for o in outcomes if o.status == "submit_error") == ambiguous_submissions
