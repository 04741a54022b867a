"""Many deferred runs on one API key, within Dune's rate budget (issue 18).

500 pipelines of random lengths (10-120 s) run on one key against the emulator set to the Plus
plan's 200 high-limit (read) requests a minute; 500 ``DunePipelineTrigger`` s wait for them in
one event loop, as in a triggerer, polling every 10 s. Twice, in the same run, with the same
seeded lengths:

* **budgeted**: the connection says ``rate_limit_per_minute=200`` (the provider keeps a fifth
  for other clients: 160 reads a minute, spread over every wait of the process);
* **unbudgeted** (the baseline): no shared budget; each request is retried on its own after a
  429, as every client without a shared limiter does.

Measured: 429 answers as a share of status reads; the detection lag from each pipeline's end
(its node execution's ``execution_ended_at``) to its trigger event, against the floor the
budget allows (a fair round over the waits still polling at that moment: half of
``max(poll_interval, waiting x 60 / reads per minute)``); and how long a kill's cancel takes
while the budget is saturated (5 of the longest pipelines are killed 30 s in).

Then two processes share the key (as two triggerers would), 100 pipelines each: with the budget
split by ``rate_limit_processes=2``, and by adaptation alone (each process thinks it owns the
160 reads a minute, and halves its rate on the 429s it meets).

Submissions are not what is measured: the emulator's plan allows them freely (its low-limit
budget is set high), so that 500 pipelines start in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from benchmarks.common import API_KEY, BenchResult, Figure, run_worker

PLAN_READS_PER_MINUTE = 200
SHARE = 0.8
POLL_INTERVAL = 10.0
LENGTHS = tuple(range(10, 121, 5))  # seconds; one catalog query per length
FIRST_QUERY = 4000
KILLS = 5
KILL_AT = 30.0
STATUS_PREFIX = "/api/v1/pipelines/executions/"
CATALOG = {
    "queries": [
        {"id": FIRST_QUERY + i, "name": f"{seconds} s", "sql": "SELECT 1 AS n", "execution_seconds": seconds}
        for i, seconds in enumerate(LENGTHS)
    ]
}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _conn(emulator: Any, extras: dict[str, Any]) -> str:
    conn = json.loads(emulator.airflow_conn_json())
    conn["extra"] = extras
    return json.dumps(conn)


@contextmanager
def _without_budget() -> Iterator[None]:
    """The baseline: hooks take no slot from a shared budget (each request stands alone)."""
    from airflow_provider_dune.hooks.http import HttpServiceHook

    original = HttpServiceHook._use_budget
    HttpServiceHook._use_budget = lambda self, *args: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        HttpServiceHook._use_budget = original  # type: ignore[method-assign]


def _submit(count: int, seed: int) -> list[str]:
    from airflow_provider_dune.hooks.dune import DuneHook

    rng = random.Random(seed)
    queries = [FIRST_QUERY + rng.randrange(len(LENGTHS)) for _ in range(count)]
    hook = DuneHook()
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda query_id: hook.execute_pipeline(query_id=query_id), queries))


async def _wait_all(pipeline_ids: list[str], kills: list[str]) -> dict[str, Any]:
    """Every trigger's event and when it came; the kills' cancel durations."""
    from airflow_provider_dune.hooks.dune import close_shared_async_session
    from airflow_provider_dune.triggers.dune import DunePipelineTrigger

    events: dict[str, tuple[float, dict[str, Any]]] = {}

    async def wait(pipeline_id: str) -> None:
        trigger = DunePipelineTrigger(pipeline_id, poll_interval=POLL_INTERVAL)
        async for event in trigger.run():
            events[pipeline_id] = (time.time(), dict(event.payload))

    async def kill(pipeline_id: str) -> float:
        await asyncio.sleep(KILL_AT)
        started = time.monotonic()
        await DunePipelineTrigger(pipeline_id, poll_interval=POLL_INTERVAL).on_kill()
        return time.monotonic() - started

    try:
        waits = [asyncio.ensure_future(wait(pid)) for pid in pipeline_ids]
        cancel_seconds = await asyncio.gather(*(kill(pid) for pid in kills))
        await asyncio.gather(*waits)
    finally:
        await close_shared_async_session()
    return {"events": events, "cancel_seconds": list(cancel_seconds)}


def _lags(
    emulator: Any, events: dict[str, tuple[float, dict[str, Any]]], killed: set[str]
) -> list[dict[str, Any]]:
    rows = []
    for pipeline_id, (at, payload) in events.items():
        if pipeline_id in killed:
            continue
        (node,) = payload["node_executions"]
        ended = emulator.execution_status(node["execution_id"])["execution_ended_at"]
        rows.append(
            {"pipeline": pipeline_id, "ended": _epoch(ended), "event": at, "status": payload["status"]}
        )
    return rows


def _floors(rows: list[dict[str, Any]], reads_per_minute: float) -> list[float]:
    """Each pipeline's floor: half a fair round over the waits still polling when it ended."""
    events = sorted(row["event"] for row in rows)
    floors = []
    for row in rows:
        waiting = len(events) - sum(1 for at in events if at <= row["ended"])
        floors.append(max(POLL_INTERVAL, waiting * 60.0 / reads_per_minute) / 2)
    return floors


def _reads(emulator: Any, since: float) -> tuple[int, int]:
    entries = [
        e
        for e in emulator.request_log.entries()
        if e.time >= since and e.method == "GET" and e.path.startswith(STATUS_PREFIX)
    ]
    return len(entries), sum(1 for e in entries if e.status == 429)


def _scenario(emulator: Any, name: str, count: int, budgeted: bool) -> dict[str, Any]:
    from airflow_provider_dune.hooks.budget import forget_budgets

    forget_budgets()
    extras = {"rate_limit_per_minute": PLAN_READS_PER_MINUTE} if budgeted else {}
    os.environ["AIRFLOW_CONN_DUNE_DEFAULT"] = _conn(emulator, extras)
    with _without_budget() if not budgeted else _nothing():
        pipelines = _submit(count, seed=18)
        longest = sorted(pipelines, key=lambda pid: -_length(emulator, pid))[:KILLS]
        since = time.time()
        waited = asyncio.run(_wait_all(pipelines, longest))
    reads, throttled = _reads(emulator, since)
    rows = _lags(emulator, waited["events"], set(longest))
    lags = [row["event"] - row["ended"] for row in rows]
    floors = _floors(rows, PLAN_READS_PER_MINUTE * SHARE)
    return {
        "name": name,
        "pipelines": count,
        "status_reads": reads,
        "status_429": throttled,
        "share_429": throttled / reads if reads else 0.0,
        "lag_median": statistics.median(lags),
        "lag_max": max(lags),
        "floor_median": statistics.median(floors),
        "cancel_seconds": waited["cancel_seconds"],
        "wrong_ends": sum(1 for row in rows if row["status"] != "success"),
        "seconds": time.time() - since,
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _length(emulator: Any, pipeline_id: str) -> int:
    (node,) = emulator.pipeline_status(pipeline_id)["node_executions"]
    query_id = node["query_execution_status"]["query_id"]
    return LENGTHS[int(query_id) - FIRST_QUERY]


def _two_processes(emulator: Any, per_process: int, split: bool) -> dict[str, Any]:
    extras: dict[str, Any] = {"rate_limit_per_minute": PLAN_READS_PER_MINUTE}
    if split:
        extras["rate_limit_processes"] = 2
    os.environ["AIRFLOW_CONN_DUNE_DEFAULT"] = _conn(emulator, extras)
    pipelines = _submit(2 * per_process, seed=2)
    since = time.time()
    env = {"AIRFLOW_CONN_DUNE_DEFAULT": os.environ["AIRFLOW_CONN_DUNE_DEFAULT"]}
    with ThreadPoolExecutor(2) as pool:
        halves = [pipelines[:per_process], pipelines[per_process:]]
        outputs = list(
            pool.map(
                lambda ids: run_worker(
                    "benchmarks.rate_budget", ["--wait", ",".join(ids)], env=env, timeout=1800
                ),
                halves,
            )
        )
    events = {pid: (at, payload) for output in outputs for pid, (at, payload) in output.items()}
    reads, throttled = _reads(emulator, since)
    rows = _lags(emulator, events, set())
    lags = [row["event"] - row["ended"] for row in rows]
    return {
        "split": split,
        "status_reads": reads,
        "status_429": throttled,
        "share_429": throttled / reads if reads else 0.0,
        "lag_median": statistics.median(lags),
        "lag_max": max(lags),
        "floor_median": statistics.median(_floors(rows, PLAN_READS_PER_MINUTE * SHARE)),
        "seconds": time.time() - since,
    }


def run(pipelines: int = 500, per_process: int = 100, command: str = "") -> BenchResult:
    from airflow_provider_dune.emulator import DuneEmulator
    from airflow_provider_dune.emulator.rate_limits import RatePlan

    result = BenchResult("rate-budget")
    plan = RatePlan("plus-reads", low_limit=100_000, high_limit=PLAN_READS_PER_MINUTE)
    with DuneEmulator(api_key=API_KEY, catalog=CATALOG, plan=plan) as emulator:
        budgeted = _scenario(emulator, "budgeted", pipelines, budgeted=True)
        time.sleep(61)  # a fresh minute for the plan's sliding window
        baseline = _scenario(emulator, "unbudgeted", pipelines, budgeted=False)
        time.sleep(61)
        split = _two_processes(emulator, per_process, split=True)
        time.sleep(61)
        adapting = _two_processes(emulator, per_process, split=False)
    result.details = {"budgeted": budgeted, "unbudgeted": baseline, "split": split, "adapting": adapting}
    setup = (
        f"{pipelines} pipelines of 10-120 s, poll_interval {POLL_INTERVAL:g} s, one event loop; emulator "
        f"allows {PLAN_READS_PER_MINUTE} reads/min (Plus); budget {PLAN_READS_PER_MINUTE * SHARE:g}/min"
    )

    def figure(name: str, value: float, unit: str, target: str, passed: bool | None, **extra: Any) -> None:
        result.figures.append(
            Figure(
                benchmark="rate-budget",
                name=name,
                value=round(value, 4),
                unit=unit,
                target=target,
                passed=passed,
                command=command,
                notes=extra.pop("notes", setup),
                **extra,
            )
        )

    figure(
        "429 answers / status reads, budgeted",
        budgeted["share_429"] * 100,
        "%",
        "≤ 1%",
        budgeted["share_429"] <= 0.01 and budgeted["wrong_ends"] == 0,
        baseline="the same pipelines without a shared budget",
        baseline_value=round(baseline["share_429"] * 100, 2),
        notes=f"{setup}; reads {budgeted['status_reads']} vs {baseline['status_reads']} unbudgeted",
    )
    figure(
        "detection lag, median (budgeted)",
        budgeted["lag_median"],
        "s",
        "≤ 1.2x the floor the budget allows",
        budgeted["lag_median"] <= 1.2 * budgeted["floor_median"],
        baseline="floor: half a fair round of the waits still polling",
        baseline_value=round(budgeted["floor_median"], 1),
        ratio=round(budgeted["lag_median"] / budgeted["floor_median"], 2),
        notes=f"{setup}; unbudgeted median {baseline['lag_median']:.1f} s, max {baseline['lag_max']:.1f} s",
    )
    figure(
        "detection lag, max / median (budgeted)",
        budgeted["lag_max"] / budgeted["lag_median"],
        "x",
        "≤ 3x",
        budgeted["lag_max"] <= 3 * budgeted["lag_median"],
        notes=f"max {budgeted['lag_max']:.1f} s, median {budgeted['lag_median']:.1f} s",
    )
    figure(
        "cancel of a killed task while the budget is saturated (slowest of 5)",
        max(budgeted["cancel_seconds"]),
        "s",
        "no wait behind polls (well under one poll round)",
        max(budgeted["cancel_seconds"]) < 5.0,
        baseline="unbudgeted, slowest of 5",
        baseline_value=round(max(baseline["cancel_seconds"]), 2),
    )
    for scenario in (split, adapting):
        how = "split by rate_limit_processes=2" if scenario["split"] else "adaptation alone"
        figure(
            f"two processes on one key, {how}: 429 / status reads",
            scenario["share_429"] * 100,
            "%",
            "context",
            None,
            notes=(
                f"2 x {per_process} pipelines; median lag {scenario['lag_median']:.1f} s (floor "
                f"{scenario['floor_median']:.1f} s), max {scenario['lag_max']:.1f} s, "
                f"{scenario['status_reads']} reads in {scenario['seconds']:.0f} s"
            ),
        )
    return result


def _child(ids: list[str]) -> None:
    """One process of the two-process scenario: wait for ``ids``, print the events as JSON."""
    waited = asyncio.run(_wait_all(ids, []))
    print(json.dumps({pid: [at, payload] for pid, (at, payload) in waited["events"].items()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait", help="comma-separated pipeline ids (a child of the two-process scenario)")
    args = parser.parse_args()
    if args.wait:
        _child(args.wait.split(","))
        sys.exit(0)
    parser.error("run through `python -m benchmarks --only rate-budget`")
