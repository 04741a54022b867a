"""A local Dune Analytics API for tests, demos and example DAGs.

A real HTTP server (aiohttp) that speaks the Dune API under ``/api/v1/...``, runs query SQL on
DuckDB against small deterministic sample tables (``dex.trades``, ``ethereum.blocks``), and can
inject faults (429 with/without ``Retry-After``, 5xx, slow, dropped, malformed responses).

Built-in catalog (``default_catalog.yaml``), usable from example DAGs:

========  =====================================================================================
query id  what it is
========  =====================================================================================
1000      DEX daily volume; builds the materialized view ``dune.emulator.result_dex_daily_volume``
          (short name ``dex_daily_volume``)
1001      top DEX projects, reads that view; parameter ``min_volume_usd`` (default ``0``).
          Its lineage pipeline has 2 nodes: node 1 refreshes the view, node 2 runs query 1001
1002      fails on purpose: unknown column ``amount_usd_typo`` at line 3, column 3
1003      Ethereum blocks per day
1004      one million rows (``range(1000000)``), for paging tests
1005      DEX projects, reads the view; its first run fails (unknown column), every later run
          succeeds: a pipeline with it in the middle shows a retry rerunning only what failed
========  =====================================================================================

Use::

    from airflow_provider_dune.emulator import DuneEmulator, FaultConfig

    with DuneEmulator(api_key="k", execution_seconds=0.2, faults=FaultConfig(rate_429=0.1, seed=1)) as dune:
        dune.base_url              # http://127.0.0.1:<port>/api  (the connection's host)
        dune.airflow_conn_json()   # value for AIRFLOW_CONN_DUNE_DEFAULT
        dune.request_log.count(method="POST", path_prefix="/api/v1/pipelines/execute")

or from a shell: ``dune-emulator --port 8089 --api-key k`` (``python -m airflow_provider_dune.emulator``).
In pytest, the ``dune_emulator`` fixture (plugin ``airflow_provider_dune.emulator.pytest_plugin``)
yields a started emulator with ``AIRFLOW_CONN_DUNE_DEFAULT`` set. See ``faults`` for when a
fault is applied relative to the work a POST starts.

This module imports nothing heavy: the pytest plugin loads it in every test session of anyone
who installs the package, so the server (aiohttp, DuckDB) is imported on first attribute use.
Without the ``emulator`` extra that import raises :class:`EmulatorNotInstalled`, which says
what to install.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_dune.emulator.faults import FaultConfig
    from airflow_provider_dune.emulator.request_log import RequestLog, RequestLogEntry
    from airflow_provider_dune.emulator.server import DuneEmulator

__all__ = ["DuneEmulator", "EmulatorNotInstalled", "FaultConfig", "RequestLog", "RequestLogEntry"]

# What the server needs beyond the provider's own dependencies, and what each is for.
EXTRA_MODULES = {"duckdb": "runs the SQL", "yaml": "reads query catalogs (package pyyaml)"}
EXTRA_HINT = "pip install 'airflow-provider-dune[emulator]'"


class EmulatorNotInstalled(ImportError):
    """The emulator's optional dependencies (the ``emulator`` extra) are not installed."""


_EXPORTS = {
    "DuneEmulator": "airflow_provider_dune.emulator.server",
    "FaultConfig": "airflow_provider_dune.emulator.faults",
    "RequestLog": "airflow_provider_dune.emulator.request_log",
    "RequestLogEntry": "airflow_provider_dune.emulator.request_log",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return getattr(import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name not in EXTRA_MODULES:
            raise
        raise EmulatorNotInstalled(
            f"The Dune emulator needs {exc.name}, which {EXTRA_MODULES[exc.name]}, and it is not "
            f"installed. Install the emulator extra: {EXTRA_HINT}"
        ) from exc
