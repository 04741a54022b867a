"""An event-loop lag probe that runs inside a real ``airflow triggerer``.

:class:`LagProbeTrigger` is a trigger whose ``run()`` sleeps 10 ms in a loop and records how
late each wake-up is, like :func:`benchmarks.loop_worker.heartbeat`, but in the triggerer's
own event loop (the forked trigger runner), next to the triggers being measured. It never
fires an event. Once a second it appends one JSON line to ``out_path``::

    {"t": <epoch at the end of the second>, "pid": ..., "beats": ..., "max_ms": ...,
     "hist": {"<lag ms, 0.1 ms bins>": count, ...}, "stalls": [[epoch, ms], ...],
     "gc2": [[epoch, ms], ...]}

``stalls`` lists every wake-up more than 50 ms late and ``gc2`` every full (generation 2)
collection with its pause, so that a reader can take any window of whole seconds and get its
max, p99 and stalls exactly (``benchmarks.real_triggerer.lag_summary``). The first line a runner writes
(``"start": true``) describes the process: pid, parent pid, ``sys.argv`` and
``gc.get_freeze_count()`` (non-zero when the triggerer froze its heap before forking the
runner).

:class:`LagProbeOperator` defers to it: :mod:`benchmarks.real_triggerer` puts one in its DAG
file, and the triggerer imports this module by its classpath (``benchmarks`` must be on the
deployment's ``PYTHONPATH``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

try:
    from airflow.sdk import BaseOperator
except ImportError:  # Airflow 2
    from airflow.models.baseoperator import BaseOperator  # type: ignore[no-redef]

CLASSPATH = "benchmarks.lag_probe.LagProbeTrigger"
BEAT = 0.01  # seconds
STALL = 0.05  # seconds: wake-ups later than this are listed one by one


class LagProbeTrigger(BaseTrigger):
    """Sleep ``interval`` seconds in a loop; append how late each wake-up was to ``out_path``."""

    def __init__(self, out_path: str, interval: float = BEAT) -> None:
        super().__init__()
        self.out_path = out_path
        self.interval = interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"out_path": self.out_path, "interval": self.interval}

    def write(self, record: dict[str, Any]) -> None:
        with open(self.out_path, "a") as out:
            out.write(json.dumps(record) + "\n")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.write(
            {
                "start": True,
                "t": time.time(),
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "argv": sys.argv,
                "gc_freeze_count": gc.get_freeze_count(),
                "gc_tracked": len(gc.get_objects()),
                "gc_enabled": gc.isenabled(),
            }
        )
        full_collections: list[list[float]] = []
        started = 0.0

        def timer(phase: str, info: dict[str, int]) -> None:
            nonlocal started
            if info["generation"] != 2:
                return
            if phase == "start":
                started = time.perf_counter()
            else:
                full_collections.append([time.time(), (time.perf_counter() - started) * 1000])

        gc.callbacks.append(timer)
        try:
            hist: Counter[str] = Counter()
            stalls: list[list[float]] = []
            beats = 0
            worst = 0.0
            next_write = time.monotonic() + 1.0
            while True:
                before = time.perf_counter()
                await asyncio.sleep(self.interval)
                lag = max(0.0, time.perf_counter() - before - self.interval)
                beats += 1
                worst = max(worst, lag)
                hist[f"{lag * 1000:.1f}"] += 1
                if lag > STALL:
                    stalls.append([time.time(), round(lag * 1000, 1)])
                if time.monotonic() >= next_write:
                    self.write(
                        {
                            "t": time.time(),
                            "pid": os.getpid(),
                            "beats": beats,
                            "max_ms": round(worst * 1000, 1),
                            "hist": hist,
                            "stalls": stalls,
                            "gc2": [[at, round(ms, 1)] for at, ms in full_collections],
                        }
                    )
                    hist, stalls, beats, worst = Counter(), [], 0, 0.0
                    full_collections.clear()
                    next_write += 1.0
        finally:
            gc.callbacks.remove(timer)
        yield TriggerEvent({"never": True})  # pragma: no cover (the loop above never ends)


class LagProbeOperator(BaseOperator):
    """Defers to a :class:`LagProbeTrigger` for good (the task stays deferred)."""

    def __init__(self, *, out_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out_path = out_path

    def execute(self, context: Any) -> None:
        self.defer(trigger=LagProbeTrigger(self.out_path), method_name="execute_complete")

    def execute_complete(self, context: Any, event: Any = None) -> None:
        return None
