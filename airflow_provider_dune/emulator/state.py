"""Everything one running emulator holds, shared by its HTTP handlers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiohttp import web

from airflow_provider_dune.emulator.catalog import Catalog, CatalogError
from airflow_provider_dune.emulator.executions import ExecutionService
from airflow_provider_dune.emulator.faults import FaultInjector
from airflow_provider_dune.emulator.host_check import AllowedHosts
from airflow_provider_dune.emulator.ids import new_ulid
from airflow_provider_dune.emulator.pipelines import PipelineService
from airflow_provider_dune.emulator.rate_limits import RateBudget
from airflow_provider_dune.emulator.request_log import RequestLog
from airflow_provider_dune.emulator.sql_engine import ResultInfo, SqlEngine

log = logging.getLogger(__name__)


@dataclass
class EmulatorState:
    api_key: str
    catalog: Catalog
    engine: SqlEngine
    executions: ExecutionService
    pipelines: PipelineService
    faults: FaultInjector
    request_log: RequestLog
    # Who may call: the names a request's Host (and a browser's Origin) may carry.
    hosts: AllowedHosts = field(default_factory=lambda: AllowedHosts("127.0.0.1"))
    # http://<bound host>:<port>, once serving: what next_uri is built from (never the Host header).
    origin: str = ""
    rate_budget: RateBudget | None = None

    def materialize_catalog_views(self) -> None:
        """Blocking, before serving: views exist on Dune before anyone refreshes them, so a query
        reading one works on its own, not only inside a pipeline."""
        pending = dict(self.catalog.views)
        while pending:
            progressed = False
            for name, view in list(pending.items()):
                query = self.catalog.queries[view.query_id]
                if any(upstream in pending for upstream in self.catalog.referenced_views(query.sql)):
                    continue
                del pending[name]
                progressed = True
                table = f"r_{new_ulid()}"
                try:
                    outcome = self.engine.run_to_table(query.render_sql(None), table)
                except CatalogError as exc:
                    log.warning("materialized view %s not built at start: %s", name, exc)
                    continue
                if isinstance(outcome, ResultInfo):
                    self.engine.copy_into_view(table, name)
                else:
                    log.warning("materialized view %s not built at start: %s", name, outcome.message)
                self.engine.drop_result(table)
            if not progressed:
                log.warning("materialized views read each other in a cycle: %s", sorted(pending))
                return


STATE_KEY = web.AppKey("dune_emulator_state", EmulatorState)
