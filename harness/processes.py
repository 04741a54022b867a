"""Process groups and process trees: stopping everything a component started, and its CPU."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import psutil


def signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def descendants(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return list(psutil.Process(pid).children(recursive=True))
    return []


def kill_tree(process: subprocess.Popen[bytes], *, grace: float = 0.0) -> int:
    """SIGKILL a process group and every descendant that left it; returns the exit code.

    With ``grace``, the process alone first gets SIGTERM and that many seconds to end.
    """
    children = descendants(process.pid)
    if grace:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    signal_group(process.pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    returncode = process.wait(timeout=10)
    psutil.wait_procs(children, timeout=10)
    return returncode


def stop_all(processes: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """SIGTERM every process group and stray descendant, then SIGKILL what is left."""
    # Task processes may start their own process group (Airflow 2's task runner does).
    strays = [child for process in processes for child in descendants(process.pid)]
    for process in processes:
        signal_group(process.pid, signal.SIGTERM)
    for stray in strays:
        with contextlib.suppress(psutil.NoSuchProcess):
            stray.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    for stray in strays:
        with contextlib.suppress(psutil.NoSuchProcess):
            stray.kill()
    psutil.wait_procs(strays, timeout=10)


def triggerer_tree(pid: int) -> dict[str, psutil.Process]:
    """A triggerer (the supervisor: DB loop), its forked trigger runner, and its log server."""
    main = psutil.Process(pid)
    tree = {"supervisor": main}
    for child in main.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            role = "log server" if "serve-logs" in " ".join(child.cmdline()) else "runner"
            if role in tree:
                role = f"{role} {child.pid}"
            tree[role] = child
    return tree


def cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """User + system CPU of each process (not its children), by role."""
    out = {}
    for role, process in processes.items():
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            out[role] = times.user + times.system
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and every live descendant."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def rss_mb(processes: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for role, process in processes.items():
        with contextlib.suppress(psutil.Error):
            out[role] = process.memory_info().rss / 2**20
    return out
