"""Shared pieces: figures, the machine description, and the emulator as a separate process."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any

import psutil

API_KEY = "bench-key-7f3a"
PYTHON = sys.executable


@dataclass
class Figure:
    """One measured figure, its same-run baseline, and the target it is held to."""

    benchmark: str
    name: str
    value: float
    unit: str
    target: str
    passed: bool | None  # None: reported for context, no target
    baseline: str = ""
    baseline_value: float | None = None
    ratio: float | None = None
    command: str = ""
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    name: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0
    skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["figures"] = [f.to_dict() for f in self.figures]
        return data


def load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "airflow": version("apache-airflow"),
        "aiohttp": version("aiohttp"),
        "requests": version("requests"),
        "pyarrow": _version_or_none("pyarrow"),
        "provider": version("airflow-provider-dune"),
    }


def _version_or_none(name: str) -> str | None:
    try:
        return version(name)
    except Exception:
        return None


class EmulatorProcess:
    """``python -m airflow_provider_dune.emulator`` on a free 127.0.0.1 port, in its own process."""

    def __init__(self, execution_seconds: float, extra_args: tuple[str, ...] = ()) -> None:
        self.execution_seconds = execution_seconds
        self.extra_args = extra_args
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.port = 0

    def __enter__(self) -> EmulatorProcess:
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "airflow_provider_dune.emulator",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--api-key",
                API_KEY,
                "--execution-seconds",
                str(self.execution_seconds),
                *self.extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"emulator exited early with {self.process.poll()}")
            found = re.search(r"serving at (http://127\.0\.0\.1:(\d+)/api)", line)
            if found:
                self.base_url, self.port = found.group(1), int(found.group(2))
                break
        else:
            raise RuntimeError("emulator did not start within 60 s")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / 2**20

    def conn_json(self) -> str:
        return json.dumps({"conn_type": "dune", "password": API_KEY, "host": self.base_url})

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url.removesuffix("/api") + path,
            data=data,
            method=method,
            headers={"X-Dune-Api-Key": API_KEY, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def requests_log(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "/_emulator/requests")["requests"])

    def clear_log(self) -> None:
        self.admin("DELETE", "/_emulator/requests")

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self.admin("PUT", "/_emulator/faults", {"rules": rules})


def submit_pipelines(base_url: str, count: int, query_id: int = 1003) -> list[str]:
    """Start ``count`` pipelines with plain ``requests`` (setup, not measured)."""
    import requests

    ids = []
    with requests.Session() as session:
        for _ in range(count):
            response = session.post(
                f"{base_url}/v1/pipelines/execute",
                json={"query_id": query_id, "performance": "medium"},
                headers={"X-Dune-Api-Key": API_KEY},
                timeout=30,
            )
            response.raise_for_status()
            ids.append(response.json()["pipeline_execution_id"])
    return ids


def run_worker(module: str, args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> Any:
    """Run ``python -m <module> <args>`` and return the JSON it prints on its last stdout line."""
    completed = subprocess.run(
        [PYTHON, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker {module} {' '.join(args)} failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


@contextlib.contextmanager
def timed(result: BenchResult) -> Iterator[None]:
    result.load_before = load()
    started = time.monotonic()
    try:
        yield
    finally:
        result.seconds = round(time.monotonic() - started, 1)
        result.load_after = load()
