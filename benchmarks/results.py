"""Results: stream a 1,000,000-row result to CSV and Parquet, against a bare ``requests`` loop.

The emulator runs catalog query 1004 (``range(1000000)``) and the same SQL over
``range(100000)``. Each stream runs in a fresh process (:mod:`benchmarks.results_worker`):
``DuneResultsToStorageOperator(format=...)`` on the provider side; on the baseline side a
plain ``requests`` loop fetching the same pages (32,000 rows) from the same endpoint and
writing the same format (CSV: the bytes, header once; Parquet: each JSON page through
``pyarrow.Table.from_pylist`` into one ``ParquetWriter``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import API_KEY, BenchResult, EmulatorProcess, Figure, run_worker

SIZES = {"100k": 100_000, "1M": 1_000_000}
FORMATS = ("csv", "parquet")


def _start(emulator: EmulatorProcess, rows: int) -> str:
    headers = {"X-Dune-Api-Key": API_KEY}
    if rows == 1_000_000:
        response = requests.post(
            f"{emulator.base_url}/v1/query/1004/execute", json={}, headers=headers, timeout=30
        )
    else:
        sql = f"SELECT range AS n, range % 7 AS bucket FROM range({rows})"
        response = requests.post(
            f"{emulator.base_url}/v1/sql/execute", json={"sql": sql}, headers=headers, timeout=30
        )
    response.raise_for_status()
    execution_id = str(response.json()["execution_id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = requests.get(
            f"{emulator.base_url}/v1/execution/{execution_id}/status", headers=headers, timeout=30
        ).json()
        if status["is_execution_finished"]:
            if status["state"] != "QUERY_STATE_COMPLETED":
                raise RuntimeError(f"result query ended {status['state']}: {status.get('error')}")
            return execution_id
        time.sleep(0.2)
    raise RuntimeError("result query did not finish within 120 s")


def run(*, command: str) -> BenchResult:
    result = BenchResult("results")
    try:
        import airflow_provider_dune.operators.results  # noqa: F401
    except ImportError as exc:
        result.skipped = f"TODO: DuneResultsToStorageOperator is not importable yet ({exc})"
        return result
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    with EmulatorProcess(execution_seconds=0.2) as emulator, tempfile.TemporaryDirectory() as tmp:
        env = {"AIRFLOW_CONN_DUNE_DEFAULT": emulator.conn_json()}
        for label, rows in SIZES.items():
            execution_id = _start(emulator, rows)
            for fmt in FORMATS:
                for impl in ("bare", "provider"):
                    out = str(Path(tmp) / f"{label}-{impl}.{fmt}")
                    cpu0 = emulator.cpu_seconds()
                    measured: dict[str, Any] = run_worker(
                        "benchmarks.results_worker",
                        [impl, fmt, execution_id, out, "--base-url", emulator.base_url, "--api-key", API_KEY],
                        env=env,
                    )
                    measured["emulator_cpu_seconds"] = emulator.cpu_seconds() - cpu0
                    measured["file_mb"] = Path(out).stat().st_size / 2**20
                    Path(out).unlink()
                    runs.setdefault(label, {})[f"{impl}-{fmt}"] = measured
    result.details["runs"] = runs
    for fmt in FORMATS:
        bare_small, bare_big = runs["100k"][f"bare-{fmt}"], runs["1M"][f"bare-{fmt}"]
        bare, mine = runs["1M"][f"bare-{fmt}"], runs["1M"][f"provider-{fmt}"]
        ratio = mine["rows_per_second"] / bare["rows_per_second"]
        result.figures.append(
            Figure(
                benchmark="results",
                name=f"{fmt}: rows/s streaming 1,000,000 rows (DuneResultsToStorageOperator)",
                value=round(mine["rows_per_second"]),
                unit="rows/s",
                baseline=f"bare requests paging loop, same pages, writing {fmt}",
                baseline_value=round(bare["rows_per_second"]),
                ratio=round(ratio, 3),
                target="≥ 0.70x baseline",
                passed=ratio >= 0.7 and mine["rows"] == bare["rows"] == 1_000_000,
                command=command,
                notes=(
                    f"rows written {mine['rows']} (baseline {bare['rows']}); "
                    f"wall {mine['wall_seconds']:.2f} s vs "
                    f"{bare['wall_seconds']:.2f} s; client CPU {mine['cpu_seconds']:.2f} s vs "
                    f"{bare['cpu_seconds']:.2f} s; emulator CPU {mine['emulator_cpu_seconds']:.2f} s vs "
                    f"{bare['emulator_cpu_seconds']:.2f} s"
                ),
            )
        )
        small, big = runs["100k"][f"provider-{fmt}"], runs["1M"][f"provider-{fmt}"]
        growth_ratio = big["peak_growth_mb"] / max(small["peak_growth_mb"], 1.0)
        result.figures.append(
            Figure(
                benchmark="results",
                name=f"{fmt}: peak memory growth while streaming, 1M rows / 100k rows",
                value=round(big["peak_growth_mb"], 1),
                unit="MB over RSS at rest",
                baseline="the same stream of 100,000 rows",
                baseline_value=round(small["peak_growth_mb"], 1),
                ratio=round(growth_ratio, 3),
                target="≤ 1.20x (flat in result size)",
                passed=growth_ratio <= 1.2,
                command=command,
                notes=(
                    f"peak RSS {big['peak_rss_mb']:.0f} MB vs {small['peak_rss_mb']:.0f} MB (process total, "
                    f"sampled every 5 ms during the stream); bare loop growth "
                    f"{bare_big['peak_growth_mb']:.1f} MB (1M) vs "
                    f"{bare_small['peak_growth_mb']:.1f} MB (100k)"
                ),
            )
        )
    return result
