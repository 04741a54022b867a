"""The figures :mod:`benchmarks.real_triggerer` reports, from what its run measured."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.common import Figure

NAME = "real-triggerer"
INTERVAL = 1.0


def figures(
    real: dict[str, Any], base: dict[str, Any], n: int, seconds: float, command: str, profiled: bool
) -> list[Figure]:
    intended = n * seconds / INTERVAL
    real_us, base_us = real["cpu_us_per_poll"], base["cpu_us_per_poll"]
    ratio = real_us / base_us if real_us and base_us else math.inf
    cpu = real["cpu_seconds"]
    idle = real["idle_cpu_cores"]
    idle_total = sum(idle.values())
    fixed_us = idle_total * real["window_seconds"] / real["polls"] * 1e6 if real["polls"] else math.nan
    others = ", ".join(f"{name} {cores:.2f}" for name, cores in real["other_components_cpu_cores"].items())
    note_profiled = "; the triggerer ran under benchmarks.profiled (idle until signalled)" if profiled else ""
    out = [
        Figure(
            benchmark=NAME,
            name="per-poll CPU in a real airflow triggerer / in-process trigger loop, all counted",
            value=round(real_us or 0.0, 1),
            unit="µs CPU/poll",
            baseline=f"benchmarks.loop_worker triggers: the same {n} triggers in one bare event loop",
            baseline_value=round(base_us or 0.0, 1),
            ratio=round(ratio, 2),
            target="reported (each side's fixed cost included: see the next figure)",
            passed=None,
            command=command,
            notes=(
                f"{n} mapped DunePipelineSensor tasks deferred, poll_interval {INTERVAL:g} s, "
                f"{real['window_seconds']:.0f} s window; polls: triggerer {real['polls']}, in-process "
                f"{base['polls']}. Triggerer CPU by process: "
                + ", ".join(f"{role} {seconds_:.2f} s" for role, seconds_ in cpu.items())
                + f". Runner alone {real['runner_us_per_poll']:.1f} µs/poll. Idle triggerer "
                "(only the lag probe's trigger): "
                + ", ".join(f"{role} {cores * 1000:.1f} ms/s" for role, cores in idle.items())
                + f", i.e. {fixed_us:.0f} µs/poll of fixed cost at this rate. Other components meanwhile "
                f"(cores): {others}; emulator {real['emulator_cpu_cores']:.2f}{note_profiled}"
            ),
        ),
        Figure(
            benchmark=NAME,
            name="trigger runner CPU per poll (the triggerer's event-loop subprocess alone)",
            value=round(real["runner_us_per_poll"], 1),
            unit="µs CPU/poll",
            baseline="in-process trigger loop",
            baseline_value=round(base_us or 0.0, 1),
            ratio=round(real["runner_us_per_poll"] / base_us, 2) if base_us else None,
            target="reported (the rest is the supervisor's DB loop and the log server)",
            passed=None,
            command=command,
        ),
        Figure(
            benchmark=NAME,
            name="polls made / polls intended",
            value=round(real["polls"] / intended, 3),
            unit="fraction",
            baseline="in-process trigger loop",
            baseline_value=round(base["polls"] / intended, 3),
            ratio=round(real["polls"] / base["polls"], 3) if base["polls"] else None,
            target="reported (a 1 s sleep after each answer makes the period 1 s + latency)",
            passed=None,
            command=command,
            notes=f"intended {intended:.0f} = {n} triggers x {seconds:g} s / {INTERVAL:g} s; "
            f"emulator answers in the window: {real['responses']}. Polls per burst (answered < 2 ms "
            f"apart): triggerer {real['mean_burst']:.2f}, in-process {base.get('mean_burst', 0.0):.2f} "
            "(the triggerer starts the triggers it picks up in one pass of its 1 s loop at once, the "
            "in-process loop spreads their starts over the first second)",
        ),
    ]
    real_marginal = marginal_us(real, idle_total)
    probes = base["probes_cpu_cores"]
    base_marginal = (base["cpu_seconds"] - probes * base["window_seconds"]) / base["polls"] * 1e6
    out.insert(
        1,
        Figure(
            benchmark=NAME,
            name="per-poll CPU with each side's fixed cost taken out",
            value=round(real_marginal, 1),
            unit="µs CPU/poll",
            baseline="in-process trigger loop minus its probes (10 ms heartbeat, 1 s psutil sampler)",
            baseline_value=round(base_marginal, 1),
            ratio=round(real_marginal / base_marginal, 2) if base_marginal > 0 else None,
            # Like for like: the triggerer's housekeeping (DB loop, log server) and the worker's
            # own probes do not grow with the polls, so they are not what a poll costs.
            target="≤ 1.20x (the same per-poll cost in a real triggerer)",
            passed=base_marginal > 0 and real_marginal / base_marginal <= 1.2,
            command=command,
            notes=f"fixed costs per second: idle triggerer {idle_total * 1000:.1f} ms/s "
            "(only the lag probe's trigger); "
            f"the in-process worker's probes {probes * 1000:.1f} ms/s (the same worker with no pipelines)",
        ),
    )
    rss0, rss1 = sum(real["rss_start_mb"].values()), sum(real["rss_end_mb"].values())
    out.append(
        Figure(
            benchmark=NAME,
            name="triggerer RSS (supervisor + runner + log server), end of window",
            value=round(rss1, 1),
            unit="MB",
            baseline=f"start of the window: {rss0:.1f} MB",
            baseline_value=round(rss0, 1),
            ratio=round(rss1 / rss0, 3) if rss0 else None,
            target="reported",
            passed=None,
            command=command,
            notes="by process at the end: "
            + ", ".join(f"{role} {mb:.1f} MB" for role, mb in real["rss_end_mb"].items())
            + f"; {rss1 / real['rss_reference_mb'] * 100 - 100:+.2f} % from "
            f"{real['rss_reference_at_s']:.0f} s into the window to its end; in-process loop: "
            f"{base['rss_reference_mb']:.1f} → "
            f"{base['rss_end_mb']:.1f} MB",
        )
    )
    states = real["task_states_after"]
    still = states.get("deferred", 0)
    bad = sum(count for status, count in real["responses"].items() if status != "200")
    out.append(
        Figure(
            benchmark=NAME,
            name="tasks still deferred after the window / tasks",
            value=still,
            unit="tasks",
            baseline_value=n,
            target=f"all {n} (no trigger fired or failed), every status GET answered 200",
            passed=still == n and real["triggers_assigned_after"] == n and bad == 0,
            command=command,
            notes=f"task states {states}; triggers assigned {real['triggers_assigned_after']}; "
            f"non-200 answers {bad}; setup: boot {real['boot_seconds']:.0f} s, "
            f"{n} tasks deferred {real['defer_seconds']:.0f} s after the trigger",
        )
    )
    return out


def marginal_us(window: dict[str, Any], idle_total: float) -> float:
    """CPU per poll of a measured window, the idle triggerer's CPU per second taken out."""
    if not window["polls"]:
        return math.nan
    return (window["cpu_total"] - idle_total * window["window_seconds"]) / window["polls"] * 1e6


def probe_start(real: dict[str, Any], window: dict[str, Any]) -> dict[str, Any]:
    """What the probe saw of the runner that measured this window (its first line)."""
    runner = window.get("processes", {}).get("runner")
    return next((r for r in real.get("probe_starts", []) if r["pid"] == runner), {})


def lag_notes(window: dict[str, Any], start: dict[str, Any]) -> str:
    lag = window["lag"]
    full = lag["full_collections"]
    return (
        f"p99 {lag['p99_ms']:.1f} ms, {lag['over_100ms']} beats > 100 ms of {lag['beats']} in "
        f"{lag['seconds_covered']} s; worst stalls (s into the window, ms): {lag['worst_stalls']}; "
        f"{full} full (gen-2) collections in the runner"
        + (f", longest {lag['full_collection_max_ms']:.0f} ms" if full else "")
        + f"; runner pid {start.get('pid')} (parent {start.get('ppid')}), gc.get_freeze_count() "
        f"{start.get('gc_freeze_count')}, {start.get('gc_tracked')} tracked objects at the probe's start"
    )


def lag_figures(real: dict[str, Any], frozen: dict[str, Any], command: str) -> list[Figure]:
    lag = real["lag"]
    out = [
        Figure(
            benchmark=NAME,
            name="event-loop lag in the real triggerer, max of a 10 ms heartbeat",
            value=lag["max_ms"] if lag["max_ms"] is not None else math.nan,
            unit="ms",
            target="reported (full collections of Airflow's heap, see the frozen run)",
            passed=None,
            command=command,
            notes="benchmarks.lag_probe.LagProbeTrigger deferred next to the sensors, in the measured "
            "window; " + lag_notes(real, probe_start(real, real)),
        )
    ]
    if not frozen:
        return out
    cold = frozen["lag"]
    idle_total = sum(real["idle_cpu_cores"].values())
    all_us = frozen["cpu_us_per_poll"] or math.nan
    out.append(
        Figure(
            benchmark=NAME,
            name="event-loop lag in the real triggerer with gc.freeze() at start-up "
            "(airflow_local_settings.py)",
            value=cold["max_ms"] if cold["max_ms"] is not None else math.nan,
            unit="ms",
            baseline="the same triggerer as-is (the figure above)",
            baseline_value=lag["max_ms"],
            ratio=round(cold["max_ms"] / lag["max_ms"], 2) if cold["max_ms"] and lag["max_ms"] else None,
            target="< 100 ms",
            passed=cold["max_ms"] is not None and cold["max_ms"] < 100,
            command=command,
            notes=f"the same deployment and triggers, the triggerer restarted with "
            "$AIRFLOW_HOME/config/airflow_local_settings.py (in `airflow triggerer`: gc.collect(); "
            f"gc.freeze() before each os.fork()), {frozen['window_seconds']:.0f} s window; "
            + lag_notes(frozen, probe_start(real, frozen))
            + f". CPU/poll: {marginal_us(frozen, idle_total):.1f} µs with the fixed cost out (as-is "
            f"{marginal_us(real, idle_total):.1f}; both minus the as-is idle triggerer, "
            f"{idle_total * 1000:.1f} ms/s), {all_us:.1f} µs all counted (as-is "
            f"{real['cpu_us_per_poll'] or math.nan:.1f}); runner alone "
            f"{frozen['runner_us_per_poll'] or math.nan:.1f} µs/poll; polls {frozen['polls']}; "
            f"task states after {frozen['task_states_after']}",
        )
    )
    return out
