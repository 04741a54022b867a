"""OpenLineage for every Dune and Maia task: what it read and wrote, what it ran and cost.

Imported only when Airflow's OpenLineage listener asks an operator for its facets
(``get_openlineage_facets_on_complete``), so a deployment without the ``openlineage`` extra
never imports this module, nor OpenLineage.

Datasets are Dune materialized views, named as their Airflow Assets are
(``dune://materialized-views/<full name>``): namespace ``dune://materialized-views``, name the
full view name, so an OpenLineage consumer and Airflow's Asset graph name a view the same way.
The service-neutral part is here; each operator supplies only its datasets and SQL
(:meth:`~airflow_provider_dune.operators.base.RemoteRunOperatorMixin.lineage_views`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet, external_query_run, sql_job

from airflow_provider_dune.assets import VIEW_URI_PREFIX

VIEW_NAMESPACE = VIEW_URI_PREFIX.rstrip("/")


@attr.define
class RemoteRunFacet(RunFacet):
    """What one Dune or Maia run was: its ids, its nodes' executions, the credits it used.

    :param ids: the run's ids (``pipeline_execution_id``, ``execution_id``, ``project_id``).
    :param credits_used: credits the run cost (Dune's ``execution_cost_credits``, summed), when known.
    :param executions: the executions that made up a pipeline: node id, execution id, status, credits.
    """

    ids: dict[str, Any] = attr.field(factory=dict)
    credits_used: float | None = attr.field(default=None)
    executions: list[dict[str, Any]] = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return "urn:airflow-provider-dune:facets:RemoteRunFacet:1-0-0"


def view_datasets(names: Iterable[str]) -> list[Dataset]:
    """One dataset per distinct materialized view, named like its Airflow Asset."""
    return [
        Dataset(namespace=VIEW_NAMESPACE, name=name)
        for name in dict.fromkeys(n.strip().lower() for n in names)
    ]


def operator_lineage(operator: Any, run: Any, event: Mapping[str, Any]) -> OperatorLineage:
    """The task's OpenLineage: the operator's views as inputs and outputs, its SQL, its run."""
    inputs, outputs = operator.lineage_views(event)
    run_facets: dict[str, Any] = {}
    if run is not None:
        source = operator.lineage_source
        run_facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=str(next(iter(run.ids.values()))), source=source
        )
        run_facets[source] = RemoteRunFacet(
            ids={k: v for k, v in run.ids.items() if isinstance(v, (str, int))},
            credits_used=event.get("credits_used"),
            executions=[
                {k: node.get(k) for k in ("node_id", "execution_id", "status", "credits")}
                for node in event.get("node_executions") or []
            ],
        )
    job_facets: dict[str, Any] = {}
    sql = operator.lineage_sql()
    if sql:
        job_facets["sql"] = sql_job.SQLJobFacet(query=sql, dialect="trino")
    return OperatorLineage(
        inputs=view_datasets(inputs),
        outputs=view_datasets(outputs),
        run_facets=run_facets,
        job_facets=job_facets,
    )
