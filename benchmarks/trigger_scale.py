"""Trigger scale and emulator throughput.

N pipelines are started on an emulator process whose executions last far longer than the
run, so every trigger keeps polling. Then, each in a fresh client process
(:mod:`benchmarks.loop_worker`):

1. the emulator's own throughput (50 keep-alive connections, status GETs back to back);
2. the baseline: a bare async GET loop on one shared aiohttp pool, N pollers, one GET a second each;
3. the provider: N ``DunePipelineTrigger.run()`` in one event loop, ``poll_interval=1``;
4. the same again after ``gc.freeze()``, the deployment remedy for the loop lag that full
   garbage collections of Airflow's own objects cause (see ``docs/triggers.md``).

Both polling phases start their pollers staggered over the first second and measure the same
window after the same warm-up.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import API_KEY, BenchResult, EmulatorProcess, Figure, run_worker, submit_pipelines

THROUGHPUT_CONNECTIONS = 50


def worker_args(emulator: EmulatorProcess, ids_file: str, **options: Any) -> list[str]:
    args = ["--base-url", emulator.base_url, "--port", str(emulator.port), "--api-key", API_KEY]
    args += ["--server-pid", str(emulator.pid)]
    args += ["--ids-file", ids_file]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def probe_throughput(emulator: EmulatorProcess, ids_file: str, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = run_worker(
        "benchmarks.loop_worker",
        ["throughput", *worker_args(emulator, ids_file, seconds=seconds, pool=THROUGHPUT_CONNECTIONS)],
    )
    return result


def emulator_figures(probe: dict[str, Any], command: str, n_pipelines: int) -> BenchResult:
    result = BenchResult("emulator")
    result.details["probe"] = probe
    result.figures.append(
        Figure(
            benchmark="emulator",
            name="status GETs per second (emulator capacity)",
            value=round(probe["requests_per_second"], 1),
            unit="req/s",
            target="reported; client benchmarks must stay well under it",
            passed=None,
            command=command,
            notes=(
                f"aiohttp client, {THROUGHPUT_CONNECTIONS} keep-alive connections, "
                f"{probe['seconds']:.1f} s, over {n_pipelines} running pipelines; "
                f"{probe['errors']} errors; emulator used {probe['emulator_cpu_cores']:.2f} cores"
            ),
        )
    )
    return result


def run_emulator_only(seconds: float, command: str) -> BenchResult:
    with EmulatorProcess(execution_seconds=100_000) as emulator, tempfile.TemporaryDirectory() as tmp:
        ids_file = str(Path(tmp) / "ids.json")
        ids = submit_pipelines(emulator.base_url, 50)
        Path(ids_file).write_text(json.dumps(ids))
        return emulator_figures(probe_throughput(emulator, ids_file, seconds), command, len(ids))


def run(
    *, triggers: int, seconds: float, warmup: float, probe_seconds: float, command: str, emulator_command: str
) -> list[BenchResult]:
    from airflow_provider_dune.hooks.dune import ASYNC_POOL_SIZE

    scale = BenchResult("trigger-scale")
    interval = 1.0
    with EmulatorProcess(execution_seconds=100_000) as emulator, tempfile.TemporaryDirectory() as tmp:
        ids_file = str(Path(tmp) / "ids.json")
        ids = submit_pipelines(emulator.base_url, triggers)
        Path(ids_file).write_text(json.dumps(ids))
        probe = probe_throughput(emulator, ids_file, probe_seconds)
        emulator_result = emulator_figures(probe, emulator_command, len(ids))
        phases: dict[str, dict[str, Any]] = {}
        for phase_name, mode, flags in (
            ("bare", "bare", []),
            ("triggers", "triggers", []),
            ("triggers-frozen", "triggers", ["--freeze-gc"]),
        ):
            phase: dict[str, Any] = run_worker(
                "benchmarks.loop_worker",
                [
                    mode,
                    *worker_args(
                        emulator,
                        ids_file,
                        interval=interval,
                        warmup=warmup,
                        seconds=seconds,
                        pool=ASYNC_POOL_SIZE,
                    ),
                    *flags,
                ],
                env={"AIRFLOW_CONN_DUNE_DEFAULT": emulator.conn_json()},
                timeout=warmup + seconds + 300,
            )
            phases[phase_name] = phase
        scale.details = {"phases": phases, "probe": probe, "pool_size": ASYNC_POOL_SIZE}
    scale.figures.extend(scale_figures(phases, probe, triggers, seconds, interval, ASYNC_POOL_SIZE, command))
    return [emulator_result, scale]


def scale_figures(
    phases: dict[str, dict[str, Any]],
    probe: dict[str, Any],
    n: int,
    seconds: float,
    interval: float,
    pool: int,
    command: str,
) -> list[Figure]:
    bare, trig = phases["bare"], phases["triggers"]
    intended = n * seconds / interval
    figures = []
    ratio = trig["cpu_us_per_poll"] / bare["cpu_us_per_poll"] if bare["cpu_us_per_poll"] else math.inf
    figures.append(
        Figure(
            benchmark="trigger-scale",
            name=f"client CPU per poll, {n} triggers",
            value=round(trig["cpu_us_per_poll"], 1),
            unit="µs CPU/poll",
            baseline=f"bare aiohttp GET loop, one pool of {pool}, same {n} pollers at 1/s",
            baseline_value=round(bare["cpu_us_per_poll"], 1),
            ratio=round(ratio, 2),
            target="≤ 1.20x baseline",
            passed=ratio <= 1.2,
            command=command,
            notes=(
                f"polls in the {seconds:.0f} s window: triggers {trig['polls']}, baseline {bare['polls']} "
                f"(intended {intended:.0f}); errors: triggers {trig['errors']}, baseline {bare['errors']}"
            ),
        )
    )
    achieved = trig["polls"] / intended
    figures.append(
        Figure(
            benchmark="trigger-scale",
            name="polls made / polls intended",
            value=round(achieved, 3),
            unit="fraction",
            baseline="bare loop",
            baseline_value=round(bare["polls"] / intended, 3),
            ratio=round(trig["polls"] / bare["polls"], 3) if bare["polls"] else None,
            target="reported (a 1 s sleep after each answer makes the period 1 s + latency)",
            passed=None,
            command=command,
        )
    )
    figures.append(
        Figure(
            benchmark="trigger-scale",
            name="event-loop lag, max of a 10 ms heartbeat",
            value=round(trig["lag_max_ms"], 1),
            unit="ms",
            baseline="bare loop",
            baseline_value=round(bare["lag_max_ms"], 1),
            ratio=round(trig["lag_max_ms"] / bare["lag_max_ms"], 2) if bare["lag_max_ms"] else None,
            target="< 100 ms",
            passed=trig["lag_max_ms"] < 100,
            command=command,
            notes=f"p99 {trig['lag_p99_ms']:.1f} ms (baseline {bare['lag_p99_ms']:.1f} ms); "
            f"beats over 100 ms: {trig['lag_over_100ms']}; worst stalls (s into window, ms): "
            f"{trig['lag_spikes'][:4]}; GC pauses by generation: {_gc_text(trig['gc'])} "
            f"(baseline: {_gc_text(bare['gc'])})",
        )
    )
    frozen = phases["triggers-frozen"]
    figures.append(
        Figure(
            benchmark="trigger-scale",
            name="event-loop lag with Airflow's start-up objects frozen (gc.freeze())",
            value=round(frozen["lag_max_ms"], 1),
            unit="ms",
            baseline="the same triggers without gc.freeze()",
            baseline_value=round(trig["lag_max_ms"], 1),
            ratio=round(frozen["lag_max_ms"] / trig["lag_max_ms"], 2) if trig["lag_max_ms"] else None,
            target="< 100 ms (the deployment remedy in docs/triggers.md works)",
            passed=frozen["lag_max_ms"] < 100,
            command=command,
            notes=f"p99 {frozen['lag_p99_ms']:.1f} ms; CPU per poll {frozen['cpu_us_per_poll']:.1f} µs "
            f"({frozen['polls']} polls, {frozen['errors']} errors); worst stalls (s into window, ms): "
            f"{frozen['lag_spikes'][:4]}; GC pauses by generation: {_gc_text(frozen['gc'])}",
        )
    )
    growth = trig["rss_growth"] or 0.0
    figures.append(
        Figure(
            benchmark="trigger-scale",
            name=f"RSS growth from {trig['rss_reference_at_s']:.0f} s into the window to its end",
            value=round(growth * 100, 2),
            unit="%",
            baseline="bare loop",
            baseline_value=round((bare["rss_growth"] or 0.0) * 100, 2),
            target="< 5 %",
            passed=growth < 0.05,
            command=command,
            notes=f"RSS {trig['rss_reference_mb']:.1f} → {trig['rss_end_mb']:.1f} MB "
            f"(baseline {bare['rss_reference_mb']:.1f} → {bare['rss_end_mb']:.1f} MB)",
        )
    )
    figures.append(
        Figure(
            benchmark="trigger-scale",
            name="established connections to the emulator, max",
            value=trig["max_connections"],
            unit="sockets",
            baseline="bare loop",
            baseline_value=bare["max_connections"],
            target=f"≤ pool size {pool} (not {n})",
            passed=0 < trig["max_connections"] <= pool,
            command=command,
            notes=f"sampled once a second with psutil; median {trig['median_connections']}",
        )
    )
    share = trig["polls_per_second"] / probe["requests_per_second"]
    figures.append(
        Figure(
            benchmark="trigger-scale",
            name="achieved request rate / emulator capacity",
            value=round(share, 3),
            unit="fraction",
            baseline=f"emulator capacity {probe['requests_per_second']:.0f} req/s (same run)",
            baseline_value=round(probe["requests_per_second"], 1),
            target="< 0.8 (the emulator was not the bottleneck)",
            passed=share < 0.8,
            command=command,
            notes=f"triggers {trig['polls_per_second']:.0f} req/s; emulator CPU while polled: "
            f"{trig['emulator_cpu_cores']:.2f} cores (triggers), {bare['emulator_cpu_cores']:.2f} (baseline)",
        )
    )
    figures.append(
        Figure(
            benchmark="trigger-scale",
            name="trigger events fired / trigger errors",
            value=trig["events"] + trig["errors"],
            unit="count",
            target="0 (every pipeline runs for the whole window)",
            passed=trig["events"] == 0 and trig["errors"] == 0,
            command=command,
            notes="; ".join(trig["error_samples"]),
        )
    )
    return figures


def _gc_text(gc: dict[str, dict[str, float]]) -> str:
    return (
        ", ".join(f"gen{gen} {info['count']}x max {info['max_ms']:.0f} ms" for gen, info in gc.items())
        or "none"
    )
