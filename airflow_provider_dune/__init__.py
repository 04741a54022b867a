"""Apache Airflow provider for the Dune Analytics API."""

from __future__ import annotations

__version__ = "0.1.0"

from airflow_provider_dune.get_provider_info import get_provider_info

__all__ = ["__version__", "get_provider_info"]
