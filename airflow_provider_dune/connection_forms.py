"""How the connection form shows the Dune and Maia connection types, as plain data.

One definition serves both ways Airflow reads it: the hooks' ``get_ui_field_behaviour``
(Airflow 2.11's form) and ``get_provider_info``'s ``ui-field-behaviour`` / ``conn-fields``
(Airflow 3's form, which does not import hooks). No heavy imports: ``get_provider_info``
runs at every Airflow start-up.
"""

from __future__ import annotations

from typing import Any

DUNE_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "login"],
    "relabeling": {"password": "API key", "host": "Base URL"},
    "placeholders": {
        "password": "Your Dune API key (dune.com > Settings > API)",
        "host": "https://api.dune.com/api (leave empty for Dune; set for the local emulator)",
        "extra": '{"timeout": 30, "retry_limit": 6, "retry_delay": 1, "retry_max_seconds": 300}',
    },
}

DUNE_FIELDS: dict[str, Any] = {
    "timeout": {"label": "Request timeout (s)", "schema": {"type": ["number", "null"], "default": 30}},
    "retry_limit": {"label": "Attempts per call", "schema": {"type": ["integer", "null"], "default": 6}},
    "retry_delay": {"label": "First retry delay (s)", "schema": {"type": ["number", "null"], "default": 1}},
    "retry_max_seconds": {
        "label": "Give up retrying after (s)",
        "schema": {"type": ["number", "null"], "default": 300},
    },
    # The key's request budget in each Airflow process (hooks/budget.py, docs/triggers.md).
    "plan": {
        "label": "Dune plan (rate limits)",
        "description": "free, plus or enterprise: every wait of a process shares this plan's requests "
        "per minute. Empty: no set limit, slow down only when Dune answers 429.",
        "schema": {"type": ["string", "null"], "enum": ["free", "plus", "enterprise", None]},
    },
    "rate_limit_per_minute": {
        "label": "Reads per minute (overrides the plan)",
        "description": "The key's limit for status and result reads (Dune's high-limit endpoints).",
        "schema": {"type": ["number", "null"]},
    },
    "rate_limit_share": {
        "label": "Share of the limit for Airflow",
        "description": "0.8 by default: a fifth is left to the key's other clients (dashboards, scripts).",
        "schema": {"type": ["number", "null"], "default": 0.8},
    },
    "rate_limit_processes": {
        "label": "Processes sharing the key",
        "description": "The number of triggerers using this connection: each takes that part of the limit.",
        "schema": {"type": ["integer", "null"], "default": 1},
    },
}

MAIA_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["host", "schema", "port", "extra"],
    "relabeling": {"login": "Client ID", "password": "Client secret"},
    "placeholders": {
        "login": "API client id (Maia > Profile & Account > API credentials)",
        "password": "API client secret",
        "region": "eu1",
        "base_url": "https://eu1.api.matillion.com/dpc",
        "token_url": "https://id.core.matillion.com/oauth/dpc/token",
    },
}

MAIA_FIELDS: dict[str, Any] = {
    "region": {
        "label": "Region",
        "description": "eu1 or us1: where your Maia account lives.",
        "schema": {"type": ["string", "null"], "enum": ["eu1", "us1", None]},
    },
    # Airflow 3's form shows placeholders on its standard fields only: the hints are descriptions.
    "base_url": {
        "label": "API base URL (overrides region)",
        "description": "e.g. https://eu1.api.matillion.com/dpc; empty: from the region.",
        "schema": {"type": ["string", "null"]},
    },
    "token_url": {
        "label": "Token URL (overrides the default)",
        "description": "e.g. https://id.core.matillion.com/oauth/dpc/token; empty: Matillion's.",
        "schema": {"type": ["string", "null"]},
    },
}


def provider_metadata(behaviour: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The kebab-case form Airflow 3 reads from ``connection-types`` in the provider info."""
    return {
        "ui-field-behaviour": {
            "hidden-fields": behaviour["hidden_fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        },
        "conn-fields": fields,
    }


def plain_extras(extras: dict[str, Any], conn_type: str) -> dict[str, Any]:
    """The extras with form-field prefixes removed: ``extra__dune__timeout`` reads as ``timeout``.

    Older connection forms store custom fields under the prefixed name, JSON extras and
    Airflow 3's form under the plain one; a plain key wins when both are set.
    """
    prefix = f"extra__{conn_type}__"
    out = {k.removeprefix(prefix): v for k, v in extras.items() if k.startswith(prefix)}
    out.update({k: v for k, v in extras.items() if not k.startswith(prefix)})
    return out
