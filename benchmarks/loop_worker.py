"""One client process polling the emulator: N triggers, or the bare baseline loop, or a throughput probe.

Run by :mod:`benchmarks.trigger_scale` as ``python -m benchmarks.loop_worker MODE ...``, so that
the CPU, memory and sockets measured are this process's alone (the emulator is another
process). Prints one JSON line with the measurements of the window.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass
class Counters:
    polls: int = 0
    errors: int = 0
    events: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])


@dataclass
class Window:
    """What the sampler sees: loop lag, RSS and sockets, recorded only inside the window."""

    port: int
    active: bool = False
    lags: list[float] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds into window, MB)
    max_connections: int = 0
    connection_samples: list[int] = field(default_factory=list)
    started: float = 0.0
    spikes: list[tuple[float, float]] = field(default_factory=list)  # (seconds into window, lag ms)
    gc_pauses: dict[int, list[float]] = field(default_factory=dict)  # generation -> pause seconds


class GcTimer:
    """Times every garbage collection, to tell a GC pause from the code's own stalls."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.window.active:
            pause = time.perf_counter() - self.started
            self.window.gc_pauses.setdefault(info["generation"], []).append(pause)


async def heartbeat(window: Window, stop: asyncio.Event) -> None:
    """A 10 ms sleeper: how late it wakes up is the event loop's lag."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        if window.active:
            lag = time.perf_counter() - before - 0.01
            window.lags.append(lag)
            if lag > 0.05:
                window.spikes.append((round(time.monotonic() - window.started, 2), round(lag * 1000, 1)))


def established(port: int) -> int:
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.status == psutil.CONN_ESTABLISHED and conn.raddr and conn.raddr.port == port
    )


async def sampler(window: Window, stop: asyncio.Event) -> None:
    me = psutil.Process()
    while not stop.is_set():
        if window.active:
            window.rss.append((time.monotonic() - window.started, me.memory_info().rss / 2**20))
            count = established(window.port)
            window.connection_samples.append(count)
            window.max_connections = max(window.max_connections, count)
        await asyncio.sleep(1.0)


async def run_polling(
    make_poller: Callable[[str, float], Callable[[], Coroutine[Any, Any, None]]],
    ids: list[str],
    args: argparse.Namespace,
    counters: Counters,
) -> dict[str, Any]:
    """Start one poller per pipeline, staggered over the first interval with the same seed in
    every mode (so both sides start alike), and measure the window after the warm-up."""
    rng = random.Random(1)
    pollers = [make_poller(pid, rng.uniform(0, args.interval)) for pid in ids]
    port, warmup, seconds, server_pid = args.port, args.warmup, args.seconds, args.server_pid
    stop = asyncio.Event()
    window = Window(port=port)
    gc.callbacks.append(GcTimer(window))
    server = psutil.Process(server_pid)
    background = [asyncio.create_task(heartbeat(window, stop)), asyncio.create_task(sampler(window, stop))]
    tasks = [asyncio.create_task(poller()) for poller in pollers]
    await asyncio.sleep(warmup)
    gc.collect()
    # The collection above stalls the loop (a full GC over Airflow's objects takes ~0.3 s): let the
    # heartbeat that slept through it wake up before the window opens, so it is not counted.
    await asyncio.sleep(0.1)
    polls0, errors0 = counters.polls, counters.errors
    cpu0, wall0 = time.process_time(), time.monotonic()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    server0 = server.cpu_times()
    window.started, window.active = wall0, True
    await asyncio.sleep(seconds)
    window.active = False
    cpu1, wall1 = time.process_time(), time.monotonic()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    server1 = server.cpu_times()
    polls = counters.polls - polls0
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, *background, return_exceptions=True)
    lags = sorted(window.lags) or [0.0]
    rss = window.rss
    reference_at = min(60.0, seconds / 2)  # "minute 1" of a 2-minute window
    reference = next((mb for at, mb in rss if at >= reference_at), rss[0][1] if rss else 0.0)
    cpu = cpu1 - cpu0
    return {
        "polls": polls,
        "errors": counters.errors - errors0,
        "error_samples": counters.error_samples,
        "events": counters.events,
        "window_seconds": wall1 - wall0,
        "cpu_seconds": cpu,
        "cpu_user": usage1.ru_utime - usage0.ru_utime,
        "cpu_system": usage1.ru_stime - usage0.ru_stime,
        "cpu_us_per_poll": cpu / polls * 1e6 if polls else None,
        "polls_per_second": polls / (wall1 - wall0),
        "lag_max_ms": lags[-1] * 1000,
        "lag_p99_ms": lags[int(len(lags) * 0.99) - 1] * 1000 if len(lags) > 1 else lags[0] * 1000,
        "lag_over_100ms": sum(1 for lag in lags if lag > 0.1),
        "heartbeats": len(window.lags),
        "rss_reference_at_s": reference_at,
        "rss_reference_mb": reference,
        "rss_end_mb": rss[-1][1] if rss else 0.0,
        "rss_growth": (rss[-1][1] / reference - 1) if rss and reference else None,
        "max_connections": window.max_connections,
        "median_connections": statistics.median(window.connection_samples)
        if window.connection_samples
        else 0,
        "lag_spikes": sorted(window.spikes, key=lambda spike: -spike[1])[:8],
        "gc": {
            str(gen): {"count": len(pauses), "max_ms": max(pauses) * 1000, "total_ms": sum(pauses) * 1000}
            for gen, pauses in sorted(window.gc_pauses.items())
        },
        "emulator_cpu_cores": (server1.user + server1.system - server0.user - server0.system)
        / (wall1 - wall0),
    }


# ------------------------------------------------------------------ modes


async def bare(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    """The baseline: one shared aiohttp pool, GET + read + json.loads, then sleep the interval.

    It runs in a process that has imported what every triggerer has loaded (``airflow.sdk``
    and the trigger base class), so both sides pay the same garbage-collection cost for
    Airflow's own objects and the ratio shows what the provider adds.
    """
    import aiohttp
    import airflow.sdk
    import airflow.triggers.base  # noqa: F401

    counters = Counters()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.pool))
    headers = {"X-Dune-Api-Key": args.api_key, "Accept": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)

    def poller(pipeline_id: str, offset: float) -> Callable[[], Coroutine[Any, Any, None]]:
        url = f"{args.base_url}/v1/pipelines/executions/{pipeline_id}/status"

        async def poll() -> None:
            await asyncio.sleep(offset)
            while True:
                try:
                    async with session.get(url, headers=headers, timeout=timeout) as response:
                        body = await response.read()
                    json.loads(body)["status"]
                    counters.polls += 1
                except (aiohttp.ClientError, asyncio.TimeoutError, KeyError, ValueError) as exc:
                    counters.error(exc)
                await asyncio.sleep(args.interval)

        return poll

    try:
        return await run_polling(poller, ids, args, counters)
    finally:
        await session.close()


async def triggers(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    """The provider: one ``DunePipelineTrigger.run()`` per pipeline, as the triggerer runs them.

    With ``--freeze-gc`` everything imported so far (Airflow, aiohttp, the provider) is moved to
    the collector's permanent generation before the triggers start, as a deployment would do
    with ``gc.freeze()`` after start-up: full collections then walk only what the running
    triggers hold, not Airflow's ~160,000 start-up objects.
    """
    from airflow_provider_dune.hooks import dune as dune_hook
    from airflow_provider_dune.triggers.dune import DunePipelineTrigger

    if args.freeze_gc:
        import aiohttp  # noqa: F401  (the hook imports it on the first request)

        gc.collect()
        gc.freeze()

    counters = Counters()
    # Count completed status reads: one extra await frame per poll, the same cost the baseline's
    # counter has.
    original = dune_hook.DuneHook.aget_pipeline_status

    async def counted(self: Any, pipeline_execution_id: str) -> Any:
        status = await original(self, pipeline_execution_id)
        counters.polls += 1
        return status

    dune_hook.DuneHook.aget_pipeline_status = counted  # type: ignore[method-assign]

    def poller(pipeline_id: str, offset: float) -> Callable[[], Coroutine[Any, Any, None]]:
        trigger = DunePipelineTrigger(pipeline_id, poll_interval=args.interval, end_time=None)

        async def poll() -> None:
            await asyncio.sleep(offset)
            try:
                async for _event in trigger.run():
                    counters.events += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                counters.error(exc)

        return poll

    try:
        return await run_polling(poller, ids, args, counters)
    finally:
        await dune_hook.close_shared_async_session()


async def throughput(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    """The emulator's own capacity: ``--pool`` keep-alive connections issuing status GETs back to back."""
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.pool))
    headers = {"X-Dune-Api-Key": args.api_key}
    done = 0
    errors = 0
    deadline = 0.0

    async def worker(index: int) -> None:
        nonlocal done, errors
        position = index
        while time.monotonic() < deadline:
            url = f"{args.base_url}/v1/pipelines/executions/{ids[position % len(ids)]}/status"
            position += args.pool
            try:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1

    try:
        deadline = time.monotonic() + 1.0  # warm the connections
        await asyncio.gather(*(worker(i) for i in range(args.pool)))
        done = errors = 0
        server = psutil.Process(args.server_pid)
        server0 = server.cpu_times()
        started = time.monotonic()
        deadline = started + args.seconds
        await asyncio.gather(*(worker(i) for i in range(args.pool)))
        elapsed = time.monotonic() - started
        server1 = server.cpu_times()
    finally:
        await session.close()
    return {
        "requests": done,
        "errors": errors,
        "seconds": elapsed,
        "requests_per_second": done / elapsed,
        "emulator_cpu_cores": (server1.user + server1.system - server0.user - server0.system) / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loop_worker")
    parser.add_argument("mode", choices=("bare", "triggers", "throughput"))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--ids-file", required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pool", type=int, default=32)
    parser.add_argument("--server-pid", type=int, required=True, help="the emulator, for its CPU time")
    parser.add_argument("--freeze-gc", action="store_true", help="triggers: gc.freeze() before they start")
    args = parser.parse_args(argv)
    with open(args.ids_file) as handle:
        ids = json.load(handle)
    mode = {"bare": bare, "triggers": triggers, "throughput": throughput}[args.mode]
    result = asyncio.run(mode(args, ids))
    result["mode"] = args.mode
    result["freeze_gc"] = args.freeze_gc
    result["n"] = len(ids)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
