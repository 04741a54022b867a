"""What ``airflow providers list`` and the connection form learn about this package."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    # Read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.
    from airflow_provider_dune import __version__
    from airflow_provider_dune.connection_forms import (
        DUNE_BEHAVIOUR,
        DUNE_FIELDS,
        MAIA_BEHAVIOUR,
        MAIA_FIELDS,
        provider_metadata,
    )
    from airflow_provider_dune.operators.deferral import DEFAULT_EVENT_HOLD

    return {
        "package-name": "airflow-provider-dune",
        "name": "Dune",
        "description": "Run Dune Analytics query pipelines and Maia (Matillion Data Productivity "
        "Cloud) pipelines from Airflow: operators, deferrable triggers, sensors, and a local API emulator.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Dune",
                "external-doc-url": "https://docs.dune.com/api-reference/overview/introduction",
                "tags": ["service"],
            },
            {
                "integration-name": "Maia",
                "external-doc-url": "https://docs.maia.ai/api-reference/pipeline-execution/pipeline-termination",
                "tags": ["service"],
            },
        ],
        "operators": [
            {
                "integration-name": "Dune",
                "python-modules": [
                    "airflow_provider_dune.operators.dune",
                    "airflow_provider_dune.operators.results",
                ],
            },
            {"integration-name": "Maia", "python-modules": ["airflow_provider_dune.operators.maia"]},
        ],
        "sensors": [
            {"integration-name": "Dune", "python-modules": ["airflow_provider_dune.sensors.dune"]},
            {"integration-name": "Maia", "python-modules": ["airflow_provider_dune.sensors.maia"]},
        ],
        "hooks": [
            {"integration-name": "Dune", "python-modules": ["airflow_provider_dune.hooks.dune"]},
            {"integration-name": "Maia", "python-modules": ["airflow_provider_dune.hooks.maia"]},
        ],
        "triggers": [
            {"integration-name": "Dune", "python-modules": ["airflow_provider_dune.triggers.dune"]},
            {"integration-name": "Maia", "python-modules": ["airflow_provider_dune.triggers.maia"]},
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_dune.hooks.dune.DuneHook",
                "hook-name": "Dune",
                "connection-type": "dune",
                **provider_metadata(DUNE_BEHAVIOUR, DUNE_FIELDS),
            },
            {
                "hook-class-name": "airflow_provider_dune.hooks.maia.MaiaHook",
                "hook-name": "Maia (Matillion DPC)",
                "connection-type": "maia",
                **provider_metadata(MAIA_BEHAVIOUR, MAIA_FIELDS),
            },
        ],
        "extra-links": [
            "airflow_provider_dune.links.dune.DuneQueryLink",
            "airflow_provider_dune.links.maia.MaiaPipelineRunLink",
        ],
        "config": {
            "dune": {
                "description": "Settings of the Dune and Maia provider.",
                "options": {
                    "deferral_event_hold": {
                        "description": "Seconds after a task defers during which its trigger holds "
                        "back its end event, so that Airflow's scheduler has processed the deferral "
                        "before the task resumes (apache/airflow #66374, #67287, #71580, #72716). "
                        "0 turns the hold off.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "10",
                        "default": str(DEFAULT_EVENT_HOLD),
                    },
                },
            },
        },
    }
