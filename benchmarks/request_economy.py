"""Request economy: how many requests one pipeline costs, counted by the emulator's request log.

For a pipeline that runs T seconds polled every P seconds the target is 1 submit plus at most
ceil(T / P) + 1 status reads, none after the read that saw the end; and while the API answers
429 (with Retry-After) on status reads, fewer reads in all (429s included), not more. Both
ways of waiting are measured: the trigger (``DunePipelineTrigger.run``, as deferred) and the
worker wait (``wait_for_run``, what the operator does when not deferrable).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import requests

from benchmarks.common import API_KEY, BenchResult, EmulatorProcess, Figure

POLL_INTERVAL = 1.0
STATUS_PREFIX = "/api/v1/pipelines/executions/"
FAULT_429 = {
    "rate_429_retry_after": 0.3,
    "retry_after_seconds": 1,
    "methods": ["GET"],
    "path_prefixes": [STATUS_PREFIX],
    "seed": 7,
}
log = logging.getLogger("benchmarks.request_economy")


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def _wait_with_trigger(ids: list[str]) -> dict[str, tuple[float, dict[str, Any]]]:
    from airflow_provider_dune.hooks.dune import close_shared_async_session
    from airflow_provider_dune.triggers.dune import DunePipelineTrigger

    async def one(pipeline_id: str) -> tuple[float, dict[str, Any]]:
        trigger = DunePipelineTrigger(pipeline_id, poll_interval=POLL_INTERVAL, end_time=time.time() + 120)
        async for event in trigger.run():
            return time.time(), dict(event.payload)
        raise RuntimeError("the trigger ended without an event")

    async def all_of() -> list[tuple[float, dict[str, Any]]]:
        try:
            return list(await asyncio.gather(*(one(pid) for pid in ids)))
        finally:
            await close_shared_async_session()

    return dict(zip(ids, asyncio.run(all_of()), strict=True))


def _wait_in_worker(ids: list[str]) -> dict[str, tuple[float, dict[str, Any]]]:
    from airflow_provider_dune.hooks.dune import DuneHook
    from airflow_provider_dune.runs.base import wait_for_run
    from airflow_provider_dune.runs.dune import DunePipelineRun

    def one(pipeline_id: str) -> tuple[float, dict[str, Any]]:
        try:
            state = wait_for_run(
                DunePipelineRun(DuneHook(), pipeline_id), poll_interval=POLL_INTERVAL, timeout=120, log=log
            )
        except Exception as exc:  # the wait failed: report it, as the trigger's error event does
            return time.time(), {"status": "error", "message": str(exc)}
        return time.time(), {"status": state.outcome.name, **state.payload}

    with ThreadPoolExecutor(len(ids)) as pool:
        return dict(zip(ids, pool.map(one, ids), strict=True))


def _condition(emulator: EmulatorProcess, way: str, faults: bool, pipelines: int) -> dict[str, Any]:
    from airflow_provider_dune.hooks.budget import forget_budgets
    from airflow_provider_dune.hooks.dune import DuneHook

    # The key's budget lives as long as the process: what one condition's 429s taught it would
    # slow the next condition down. Each condition starts as a fresh process would.
    forget_budgets()
    emulator.set_faults([FAULT_429] if faults else [])
    emulator.clear_log()
    hook = DuneHook()
    ids = [hook.execute_pipeline(query_id=1003) for _ in range(pipelines)]
    ends = _wait_with_trigger(ids) if way == "trigger" else _wait_in_worker(ids)
    time.sleep(2.5 * POLL_INTERVAL)  # anything polled after the end would show up by now
    entries = emulator.requests_log()
    emulator.set_faults([])
    submits = sum(1 for e in entries if e["method"] == "POST" and e["path"] == "/api/v1/pipelines/execute")
    per_pipeline = []
    for pid in ids:
        ended_client, payload = ends[pid]
        mine = [e for e in entries if pid in e["path"]]
        status_reads = [e for e in mine if e["method"] == "GET" and e["path"].endswith("/status")]
        nodes = payload.get("node_executions") or []
        seconds = float(emulator.execution_seconds)  # when the wait failed before reading a node
        if nodes and nodes[0].get("execution_id"):
            execution = requests.get(
                f"{emulator.base_url}/v1/execution/{nodes[0]['execution_id']}/status",
                headers={"X-Dune-Api-Key": API_KEY},
                timeout=30,
            ).json()
            seconds = _epoch(execution["execution_ended_at"]) - _epoch(execution["submitted_at"])
        per_pipeline.append(
            {
                "pipeline_execution_id": pid,
                "event_status": payload.get("status"),
                "event_message": str(payload.get("message", ""))[:300],
                "run_seconds": seconds,
                "status_reads": len(status_reads),
                "status_429": sum(1 for e in status_reads if e["status"] == 429),
                "allowed_reads": math.ceil(seconds / POLL_INTERVAL) + 1,
                "after_end": sum(1 for e in mine if e["time"] > ended_client),
            }
        )
    return {"way": way, "faults": faults, "submits": submits, "pipelines": per_pipeline}


def run(*, execution_seconds: float, pipelines: int, command: str) -> BenchResult:
    result = BenchResult("request-economy")
    with EmulatorProcess(execution_seconds=execution_seconds) as emulator:
        os.environ["AIRFLOW_CONN_DUNE_DEFAULT"] = emulator.conn_json()
        conditions = [
            _condition(emulator, way, faults, pipelines)
            for way in ("trigger", "worker")
            for faults in (False, True)
        ]
    result.details["conditions"] = conditions
    for way in ("trigger", "worker"):
        clean, throttled = (c for c in conditions if c["way"] == way)
        label = "DunePipelineTrigger" if way == "trigger" else "wait_for_run (operator, not deferred)"
        for condition in (clean, throttled):
            rows = condition["pipelines"]
            reads = sum(p["status_reads"] for p in rows)
            allowed = sum(p["allowed_reads"] for p in rows)
            worst = max(p["status_reads"] - p["allowed_reads"] for p in rows)
            after = sum(p["after_end"] for p in rows)
            ok = worst <= 0 and after == 0 and condition["submits"] == len(rows)
            ok = ok and all(p["event_status"] in ("success", "SUCCEEDED") for p in rows)
            suffix = " under 429s" if condition["faults"] else ""
            result.figures.append(
                Figure(
                    benchmark="request-economy",
                    name=f"{label}: status reads{suffix}, {len(rows)} pipelines",
                    value=reads,
                    unit="requests",
                    baseline="the bound Σ(ceil(T/P)+1)",
                    baseline_value=allowed,
                    ratio=round(reads / allowed, 3),
                    target="each pipeline ≤ ceil(T/P)+1 reads, 1 submit, 0 requests after the end",
                    passed=ok,
                    command=command,
                    notes=(
                        f"P={POLL_INTERVAL:.0f} s, T={_seconds(rows)} s; "
                        f"reads per pipeline {[p['status_reads'] for p in rows]}, "
                        f"of which 429 {[p['status_429'] for p in rows]}; submits {condition['submits']}; "
                        f"requests after the end {after}; waits that did not succeed: "
                        f"{_failures(rows)}"
                    ),
                )
            )
        clean_reads = sum(p["status_reads"] for p in clean["pipelines"])
        throttled_reads = sum(p["status_reads"] for p in throttled["pipelines"])
        result.figures.append(
            Figure(
                benchmark="request-economy",
                name=f"{label}: status reads under 429s / without",
                value=throttled_reads,
                unit="requests",
                baseline="the same pipelines without 429s, same run",
                baseline_value=clean_reads,
                ratio=round(throttled_reads / clean_reads, 3) if clean_reads else None,
                target="≤ 1.00x (fewer polls under 429, not more)",
                passed=throttled_reads <= clean_reads,
                command=command,
                notes="429 with Retry-After: 1 on 30% of status GETs (seeded); 429 answers count as reads",
            )
        )
    return result


def _seconds(rows: list[dict[str, Any]]) -> str:
    return ", ".join(f"{row['run_seconds']:.2f}" for row in rows)


def _failures(rows: list[dict[str, Any]]) -> list[str]:
    return [row["event_message"] for row in rows if row["event_status"] not in ("success", "SUCCEEDED")]
