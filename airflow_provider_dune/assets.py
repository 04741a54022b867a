"""Materialized views as Airflow Assets (Datasets on Airflow 2.11), so DAGs can run on "view X refreshed".

A view is named by the URI ``dune://materialized-views/<full view name>``, e.g.
``dune://materialized-views/dune.my_team.result_dex_daily_volume``. Schedule a DAG on it with
``schedule=[dune_view_asset("dune.my_team.result_dex_daily_volume")]``.

A task that knows its view when the DAG is parsed declares the Asset itself as an outlet;
Airflow records an event for it when the task succeeds. A task that learns its views only
while it runs (a pipeline from a query's lineage, a templated view name) declares the alias
:data:`VIEWS_ALIAS_NAME` instead and attaches one event per refreshed view to it at the end;
Airflow then creates the Asset if needed and triggers every DAG scheduled on it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.providers.common.compat.sdk import Asset, AssetAlias

from airflow_provider_dune.models.dune import FULL_VIEW_NAME

VIEW_URI_PREFIX = "dune://materialized-views/"
# One alias for every runtime-discovered refresh; also schedulable: "any Dune view refreshed".
VIEWS_ALIAS_NAME = "dune-materialized-views"
log = logging.getLogger(__name__)


def dune_view_uri(name: str) -> str:
    return VIEW_URI_PREFIX + name.strip().lower()


def dune_view_asset(name: str) -> Asset:
    """The Asset for a materialized view, by its full name (``dune.<team>.result_<name>``)."""
    return Asset(dune_view_uri(name))


def views_alias() -> AssetAlias:
    return AssetAlias(VIEWS_ALIAS_NAME)


def is_full_view_name(name: Any) -> bool:
    """A literal, complete view name: known at parse time, so it can be a declared outlet."""
    return isinstance(name, str) and FULL_VIEW_NAME.fullmatch(name.strip().lower()) is not None


def emit_view_events(
    context: Mapping[str, Any],
    names: Iterable[str],
    *,
    declared: Iterable[Any] = (),
    extra: Mapping[str, Any] | None = None,
) -> list[str]:
    """Record "view refreshed" for each name; return the URIs. Declared Assets only get ``extra``."""
    outlet_events = context.get("outlet_events")
    if outlet_events is None:  # called outside a task run (a unit test driving execute())
        return []
    declared_uris = {getattr(a, "uri", None) for a in declared}
    uris = []
    alias_ok: bool | None = None
    for name in dict.fromkeys(names):
        asset = dune_view_asset(name)
        info = {"view": name.strip().lower(), **(extra or {})}
        if asset.uri in declared_uris:
            outlet_events[asset].extra = info
        else:
            if alias_ok is None:
                alias_ok = _alias_registered()
            if not alias_ok:
                log.warning(
                    "Not recording the refresh of %s as an Asset event: the asset alias %r is not in "
                    "Airflow's database yet (the DAG was not parsed by the DAG processor, e.g. dag.test() "
                    "on Airflow 2).",
                    name,
                    VIEWS_ALIAS_NAME,
                )
                continue
            outlet_events[views_alias()].add(asset, extra=info)
        uris.append(asset.uri)
    return uris


def _alias_registered() -> bool:
    """Whether Airflow 2 can record an alias event; an unknown alias makes it fail the finished task."""
    try:
        from airflow.models.dataset import DatasetAliasModel  # Airflow 2.10/2.11 only
    except ImportError:
        return True  # Airflow 3 records alias events through its API server, registered or not
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(DatasetAliasModel.id).filter_by(name=VIEWS_ALIAS_NAME).first() is not None
