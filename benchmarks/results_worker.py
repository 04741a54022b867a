"""One results-streaming run in a fresh process: the provider's operator or the bare ``requests`` loop.

``python -m benchmarks.results_worker IMPL FORMAT EXECUTION_ID OUT_PATH`` with
``AIRFLOW_CONN_DUNE_DEFAULT`` pointing at the emulator. Prints one JSON line: rows, wall
seconds, CPU seconds, RSS before the stream and peak RSS (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import threading
import time
from typing import Any

import psutil

PAGE_ROWS = 32_000  # DuneHook.DEFAULT_RESULT_PAGE_ROWS; both sides fetch the same pages


def bare_csv(base_url: str, key: str, execution_id: str, out_path: str) -> int:
    """GET /results/csv page after page (X-Dune-Next-Offset), header once, bytes to the file."""
    import requests

    rows = 0
    offset: int | None = 0
    with requests.Session() as session, open(out_path, "wb") as out:
        while offset is not None:
            response = session.get(
                f"{base_url}/v1/execution/{execution_id}/results/csv",
                params={"limit": PAGE_ROWS, "offset": offset},
                headers={"X-Dune-Api-Key": key},
                timeout=60,
            )
            response.raise_for_status()
            body = response.content
            if offset:
                body = body.split(b"\n", 1)[1]
            out.write(body)
            rows += body.count(b"\n") - (0 if offset else 1)
            following = response.headers.get("X-Dune-Next-Offset")
            offset = int(following) if following else None
    return rows


def bare_parquet(base_url: str, key: str, execution_id: str, out_path: str) -> int:
    """GET /results (JSON) page after page, each page one Arrow table appended to one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import requests

    rows = 0
    offset: int | None = 0
    writer = None
    with requests.Session() as session:
        try:
            while offset is not None:
                response = session.get(
                    f"{base_url}/v1/execution/{execution_id}/results",
                    params={"limit": PAGE_ROWS, "offset": offset},
                    headers={"X-Dune-Api-Key": key},
                    timeout=60,
                )
                response.raise_for_status()
                payload = response.json()
                table = pa.Table.from_pylist(payload["result"]["rows"])
                if writer is None:
                    writer = pq.ParquetWriter(out_path, table.schema)
                writer.write_table(table)
                rows += table.num_rows
                offset = payload.get("next_offset")
        finally:
            if writer is not None:
                writer.close()
    return rows


def provider(fmt: str, execution_id: str, out_path: str) -> int:
    from airflow_provider_dune.operators.results import DuneResultsToStorageOperator

    operator = DuneResultsToStorageOperator(
        task_id="bench",
        path=f"file://{out_path}",
        format="csv" if fmt == "csv" else "parquet",
        execution_id=execution_id,
    )
    returned: dict[str, Any] = operator.execute({})  # type: ignore[arg-type]
    return int(returned["rows"])


class PeakRss(threading.Thread):
    """Samples this process's RSS every 5 ms while the stream runs (``ru_maxrss`` would also
    count the import peak before it)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.done.wait(0.005):
            self.peak_mb = max(self.peak_mb, me.memory_info().rss / 2**20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.results_worker")
    parser.add_argument("impl", choices=("provider", "bare"))
    parser.add_argument("format", choices=("csv", "parquet"))
    parser.add_argument("execution_id")
    parser.add_argument("out_path")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args(argv)
    # Import everything first, so that RSS before the stream is the process at rest.
    import pyarrow.parquet  # noqa: F401
    import requests  # noqa: F401

    if args.impl == "provider":
        import airflow_provider_dune.operators.results  # noqa: F401
    gc.collect()
    rss_before = psutil.Process().memory_info().rss / 2**20
    sampler = PeakRss()
    sampler.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if args.impl == "provider":
        rows = provider(args.format, args.execution_id, args.out_path)
    elif args.format == "csv":
        rows = bare_csv(args.base_url, args.api_key, args.execution_id, args.out_path)
    else:
        rows = bare_parquet(args.base_url, args.api_key, args.execution_id, args.out_path)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    sampler.done.set()
    sampler.join()
    peak = max(sampler.peak_mb, psutil.Process().memory_info().rss / 2**20)
    lifetime_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "impl": args.impl,
                "format": args.format,
                "rows": rows,
                "wall_seconds": wall,
                "cpu_seconds": cpu,
                "rows_per_second": rows / wall,
                "rss_before_mb": rss_before,
                "peak_rss_mb": peak,
                "peak_growth_mb": peak - rss_before,
                "lifetime_peak_rss_mb": lifetime_peak,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
