"""Run a module under a cProfile that SIGUSR1 switches on and, the second time, off and dumps.

``python -m benchmarks.profiled OUT_PREFIX MODULE [ARGS...]`` runs ``python -m MODULE ARGS``
in this process. Nothing is profiled until the process gets SIGUSR1; the next SIGUSR1 stops
profiling and writes ``OUT_PREFIX.<pid>.prof`` (pstats format). Forked children inherit the
handler and a copy of the idle profiler, and dump to their own pid's file, so the trigger
runner that ``airflow triggerer`` forks can be profiled on its own for exactly the chosen
window, on the CPU clock. Only :mod:`benchmarks.real_triggerer`'s ``--profile`` mode uses it:
profiling slows the code down several times, so no figure is taken from a profiled window.
"""

from __future__ import annotations

import cProfile
import math
import os
import pstats
import runpy
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any


def install(prefix: str) -> None:
    # CPU time, not wall time: the event loop's idle waits in epoll are not cost.
    profiler = cProfile.Profile(time.process_time)
    active = False

    def toggle(signum: int, frame: FrameType | None) -> None:
        nonlocal active
        if not active:
            profiler.enable()
            active = True
        else:
            profiler.disable()
            active = False
            profiler.dump_stats(f"{prefix}.{os.getpid()}.prof")
            profiler.clear()

    signal.signal(signal.SIGUSR1, toggle)


# ------------------------------------------------------------------ reading the dumps


CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("provider", ("airflow_provider_dune/",)),
    ("aiohttp, yarl, multidict", ("aiohttp/", "yarl/", "multidict/", "aiohappyeyeballs/")),
    ("greenback / greenlet", ("greenback/", "greenlet", "outcome/")),
    ("asyncio loop", ("asyncio/", "selectors.py", "epoll", "uvloop")),
    ("triggerer loop (triggerer_job_runner)", ("jobs/triggerer_job_runner.py",)),
    ("task SDK comms, supervisor", ("sdk/execution_time/",)),
    ("logging (structlog, logging)", ("structlog/", "/logging/", "sdk/log", "airflow/_shared/logging")),
    ("SQLAlchemy, sqlite", ("sqlalchemy/", "sqlite3")),
    ("pydantic, msgspec", ("pydantic", "msgspec")),
    ("opentelemetry, stats", ("opentelemetry/", "observability/", "stats")),
    ("json", ("json",)),
    ("psutil", ("psutil/",)),
    ("the in-process worker's probes and counter", ("benchmarks/",)),
    ("C builtins (socket I/O, isinstance, heapq, ...)", ("~",)),
    ("other airflow", ("airflow/",)),
)


def category(filename: str, function: str) -> str:
    key = f"{filename} {function}"
    for name, patterns in CATEGORIES:
        if any(pattern in key for pattern in patterns):
            return name
    return "other"


def summarize_profile(path: Path, polls: int, seconds: float, top: int = 15) -> dict[str, Any]:
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    by_category: Counter[str] = Counter()
    functions = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in stats.items():
        by_category[category(filename, function)] += tottime
        short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        functions.append((tottime, cumtime, calls, f"{short}:{line}({function})"))
    functions.sort(reverse=True)
    total = sum(by_category.values())
    per_poll = 1e6 / polls if polls else math.nan
    return {
        "polls": polls,
        "cpu_seconds": total,
        "us_per_poll": total * per_poll,
        "cpu_ms_per_second": total / seconds * 1000,
        "categories_us_per_poll": {
            name: round(seconds * per_poll, 1) for name, seconds in by_category.most_common()
        },
        "top_functions": [
            {
                "function": name,
                "calls_per_poll": round(calls / polls, 2) if polls else None,
                "self_us_per_poll": round(tottime * per_poll, 1),
                "cumulative_us_per_poll": round(cumtime * per_poll, 1),
            }
            for tottime, cumtime, calls, name in functions[:top]
        ],
    }


def wait_for_file(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # let the dump finish


def print_profile(profiles: dict[str, Any]) -> None:
    sides = {
        "in-process trigger loop": {"loop": profiles.get("baseline")},
        "real triggerer": profiles.get("real"),
    }
    for side, roles in sides.items():
        for role, summary in (roles or {}).items():
            if not summary or "error" in summary:
                print(f"{side} / {role}: {summary}")
                continue
            print(
                f"\n{side} / {role}: {summary['us_per_poll']:.0f} µs CPU/poll under the profiler "
                f"({summary['polls']} polls; {summary['cpu_ms_per_second']:.1f} ms CPU/s)"
            )
            for name, us in summary["categories_us_per_poll"].items():
                if us >= 0.1:
                    print(f"  {us:8.1f}  {name}")
            print("  top functions (self µs/poll, cumulative µs/poll, calls/poll):")
            for entry in summary["top_functions"]:
                print(
                    f"  {entry['self_us_per_poll']:8.1f} {entry['cumulative_us_per_poll']:8.1f} "
                    f"{entry['calls_per_poll']!s:>6}  {entry['function']}"
                )


def main() -> None:
    prefix, module, *args = sys.argv[1:]
    install(prefix)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
