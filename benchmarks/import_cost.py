"""Import cost: what importing the provider adds on top of ``import airflow.sdk``.

Each sample is a fresh interpreter running
``import time; import airflow.sdk; t = time.perf_counter(); import X; print(...)``; the
modules are interleaved so that the machine's load drifts over all of them alike. The
baseline, in the same interpreters, is the time ``import airflow.sdk`` itself took.

Bytecode is cached as in an installed deployment (pip compiles ``.pyc`` files at install
time): the samples run with a private ``PYTHONPYCACHEPREFIX``, written by one discarded
warm-up round, even where the environment sets ``PYTHONDONTWRITEBYTECODE`` (this machine
does, which would otherwise make every sample recompile every module from source). A module
over the target is profiled with ``python -X importtime`` and the slowest imports it pulls
in are listed.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
from typing import Any

from benchmarks.common import PYTHON, BenchResult, Figure

MODULES = (
    "airflow_provider_dune",
    "airflow_provider_dune.hooks.dune",
    "airflow_provider_dune.operators.dune",
    "airflow_provider_dune.sensors.dune",
    "airflow_provider_dune.triggers.dune",
)
TARGET_MS = 30.0
SNIPPET = (
    "import time, json; t0 = time.perf_counter(); import airflow.sdk; t1 = time.perf_counter(); "
    "import {module}; t2 = time.perf_counter(); print(json.dumps([t1 - t0, t2 - t1]))"
)


_PYCACHE = tempfile.mkdtemp(prefix="dune-bench-pycache-")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    return env


def sample(module: str) -> tuple[float, float]:
    out = subprocess.run(
        [PYTHON, "-c", SNIPPET.format(module=module)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=_env(),
    ).stdout
    sdk, added = json.loads(out.strip().splitlines()[-1])
    return float(sdk), float(added)


def profile(module: str, top: int = 12) -> dict[str, Any]:
    """``-X importtime`` of ``import X`` after ``import airflow.sdk``: the slowest imports X adds."""
    stderr = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", f"import airflow.sdk; import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=_env(),
    ).stderr
    rows = []
    for line in stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        if found:
            rows.append((int(found.group(1)), int(found.group(2)), len(found.group(3)), found.group(4)))
    # Everything after airflow.sdk's own (top-level) line was imported because of X.
    start = next(i for i, row in enumerate(rows) if row[3] == "airflow.sdk" and row[2] == 0) + 1
    added = rows[start:]
    by_cumulative = sorted((r for r in added if r[2] <= 4), key=lambda r: -r[1])[:top]
    by_self = sorted(added, key=lambda r: -r[0])[:top]
    third_party: dict[str, int] = {}
    for self_us, _cum, _depth, name in added:
        root = name.split(".")[0]
        third_party[root] = third_party.get(root, 0) + self_us
    return {
        "total_ms": sum(r[0] for r in added) / 1000,
        "modules": len(added),
        "by_cumulative": [(name, cum / 1000) for _s, cum, _d, name in by_cumulative],
        "by_self": [(name, s / 1000) for s, _c, _d, name in by_self],
        "by_package": sorted(((k, v / 1000) for k, v in third_party.items()), key=lambda kv: -kv[1]),
    }


def run(*, runs: int, command: str) -> BenchResult:
    result = BenchResult("import-cost")
    samples: dict[str, list[tuple[float, float]]] = {module: [] for module in MODULES}
    for module in MODULES:
        sample(module)  # warm-up: writes the bytecode cache, not counted
    for _ in range(runs):
        for module in MODULES:
            samples[module].append(sample(module))
    profiles: dict[str, Any] = {}
    for module in MODULES:
        added_ms = statistics.median(added for _sdk, added in samples[module]) * 1000
        sdk_ms = statistics.median(sdk for sdk, _added in samples[module]) * 1000
        passed = added_ms < TARGET_MS
        notes = f"median of {runs} fresh interpreters; spread {_spread(samples[module])}"
        if not passed:
            profiles[module] = prof = profile(module)
            worst = ", ".join(f"{name} {ms:.0f} ms" for name, ms in prof["by_package"][:6])
            own = sum(ms for name, ms in prof["by_package"] if name in ("airflow_provider_dune", "airflow"))
            slowest = ", ".join(f"{name} {ms:.0f} ms" for name, ms in prof["by_self"][:3])
            notes += (
                f"; -X importtime: {prof['modules']} modules added, self time by package: {worst}; "
                f"slowest single modules: {slowest}; provider + airflow modules alone: {own:.0f} ms"
            )
        result.figures.append(
            Figure(
                benchmark="import-cost",
                name=f"import {module}",
                value=round(added_ms, 1),
                unit="ms added",
                baseline="import airflow.sdk in the same interpreters",
                baseline_value=round(sdk_ms, 1),
                ratio=round(added_ms / sdk_ms, 3),
                target=f"< {TARGET_MS:.0f} ms added",
                passed=passed,
                command=command,
                notes=notes,
            )
        )
    result.details = {"samples": samples, "profiles": profiles}
    return result


def _spread(samples: list[tuple[float, float]]) -> str:
    added = sorted(a * 1000 for _s, a in samples)
    return f"{added[0]:.0f}-{added[-1]:.0f} ms"
