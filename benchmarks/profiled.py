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
import os
import runpy
import signal
import sys
import time
from types import FrameType


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


def main() -> None:
    prefix, module, *args = sys.argv[1:]
    install(prefix)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
