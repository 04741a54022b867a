"""What ``airflow providers list`` and the connection form learn about this package."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    # Read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.
    from airflow_provider_dune import __version__

    return {
        "package-name": "airflow-provider-dune",
        "name": "Dune",
        "description": "Run Dune Analytics query pipelines from Airflow: operators, deferrable "
        "triggers, sensors, and a local Dune API emulator.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Dune",
                "external-doc-url": "https://docs.dune.com/api-reference/overview/introduction",
                "tags": ["service"],
            }
        ],
        "operators": [
            {"integration-name": "Dune", "python-modules": ["airflow_provider_dune.operators.dune"]}
        ],
        "sensors": [{"integration-name": "Dune", "python-modules": ["airflow_provider_dune.sensors.dune"]}],
        "hooks": [{"integration-name": "Dune", "python-modules": ["airflow_provider_dune.hooks.dune"]}],
        "triggers": [{"integration-name": "Dune", "python-modules": ["airflow_provider_dune.triggers.dune"]}],
        "connection-types": [
            {"hook-class-name": "airflow_provider_dune.hooks.dune.DuneHook", "connection-type": "dune"}
        ],
        "extra-links": ["airflow_provider_dune.links.dune.DuneQueryLink"],
    }
