"""Command line: ``dune-emulator`` / ``python -m airflow_provider_dune.emulator``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from airflow_provider_dune import emulator as package
from airflow_provider_dune.emulator.faults import FaultConfig
from airflow_provider_dune.emulator.rate_limits import PLANS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dune-emulator", description="Serve a local Dune API emulator.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (loopback unless --allow-remote)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback: anyone who reaches it and learns the key can run SQL",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="a host name clients use to reach it (e.g. a container name), besides its own addresses",
    )
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument("--api-key", help="value expected in X-Dune-Api-Key (default: a random key, printed)")
    parser.add_argument("--maia-client-secret", help="Maia client secret (default: random, printed)")
    parser.add_argument(
        "--catalog", help="YAML catalog of queries and materialized views (default: built-in)"
    )
    parser.add_argument("--team", help="team in materialized view names dune.<team>.result_<name>")
    parser.add_argument(
        "--execution-seconds", type=float, default=0.5, help="simulated duration per execution"
    )
    parser.add_argument("--max-result-rows", type=int, help="truncate bigger results (COMPLETED_PARTIAL)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--sql-memory-limit", default="1GB", help="DuckDB's memory cap")
    limits.add_argument("--sql-timeout-seconds", type=float, default=30.0, help="interrupt longer SQL")
    limits.add_argument(
        "--max-executions", type=int, default=10_000, help="forget the oldest finished runs past this many"
    )
    limits.add_argument(
        "--max-result-bytes",
        type=int,
        default=256 * 1024 * 1024,
        help="expire the oldest results past this many bytes",
    )
    parser.add_argument(
        "--plan",
        choices=sorted(PLANS),
        help="enforce this Dune plan's requests per minute (low/high-limit endpoints), 429 past them",
    )
    parser.add_argument(
        "--credit-limit", type=float, help="credits executions may use; past it, 402 (credit limit)"
    )
    parser.add_argument(
        "--node-vocabulary",
        default="words",
        help="how pipeline node statuses are spelled, which Dune does not document: words "
        "(the default), query_state or upper",
    )
    faults = parser.add_argument_group("fault injection (disjoint shares of matching requests)")
    faults.add_argument("--fault-429", type=float, default=0.0, help="share of 429 without Retry-After")
    faults.add_argument(
        "--fault-429-retry-after", type=float, default=0.0, help="share of 429 with Retry-After"
    )
    faults.add_argument("--retry-after-seconds", type=int, default=1)
    faults.add_argument("--fault-5xx", type=float, default=0.0, help="share of 500/502/503/504")
    faults.add_argument("--fault-slow", type=float, default=0.0, help="share of slow responses")
    faults.add_argument("--slow-seconds", type=float, default=2.0)
    faults.add_argument("--fault-drop", type=float, default=0.0, help="share of dropped connections")
    faults.add_argument("--fault-malformed", type=float, default=0.0, help="share of truncated JSON bodies")
    faults.add_argument("--fault-seed", type=int, help="seed for reproducible fault draws")
    faults.add_argument("--fault-method", action="append", default=[], help="only these methods (repeatable)")
    faults.add_argument(
        "--fault-path-prefix", action="append", default=[], help="only these paths (repeatable)"
    )
    return parser


def faults_from_args(args: argparse.Namespace) -> FaultConfig | None:
    config = FaultConfig(
        rate_429=args.fault_429,
        rate_429_retry_after=args.fault_429_retry_after,
        retry_after_seconds=args.retry_after_seconds,
        rate_5xx=args.fault_5xx,
        rate_slow=args.fault_slow,
        slow_seconds=args.slow_seconds,
        rate_drop=args.fault_drop,
        rate_malformed=args.fault_malformed,
        methods=tuple(args.fault_method),
        path_prefixes=tuple(args.fault_path_prefix),
        seed=args.fault_seed,
    )
    return config if config.active else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        faults = faults_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        emulator_class = package.DuneEmulator
    except package.EmulatorNotInstalled as exc:
        print(f"dune-emulator: {exc}", file=sys.stderr)
        return 2
    try:
        emulator = emulator_class(
            api_key=args.api_key,
            catalog=args.catalog,
            execution_seconds=args.execution_seconds,
            faults=faults,
            port=args.port,
            host=args.host,
            team=args.team,
            max_result_rows=args.max_result_rows,
            maia_client_secret=args.maia_client_secret,
            allow_remote=args.allow_remote,
            allowed_hosts=args.allowed_host,
            sql_memory_limit=args.sql_memory_limit,
            sql_timeout_seconds=args.sql_timeout_seconds,
            max_executions=args.max_executions,
            max_result_bytes=args.max_result_bytes,
            plan=args.plan,
            credit_limit=args.credit_limit,
            node_vocabulary=args.node_vocabulary,
        )
    except ValueError as exc:
        parser.error(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    emulator.start()
    print(f"Dune API emulator serving at {emulator.base_url}", flush=True)
    print(f"export AIRFLOW_CONN_DUNE_DEFAULT='{emulator.airflow_conn_json()}'", flush=True)
    print(f"export AIRFLOW_CONN_MAIA_DEFAULT='{emulator.maia_airflow_conn_json()}'", flush=True)
    if args.api_key is None:
        print(f"API key (random, this run only; --api-key sets one): {emulator.api_key}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
