"""The queries and materialized views the emulator knows, loaded from YAML or a dict.

Catalog format (YAML or the equivalent dict)::

    team: emulator                 # optional; views are named dune.<team>.result_<name>
    queries:
      - id: 1000
        name: DEX daily volume
        sql: SELECT ... WHERE amount_usd >= {{min_amount}}
        parameters: [{key: min_amount, type: number, value: "0"}]
        execution_seconds: 2       # optional: override the emulator-wide simulated duration
        fail_first_runs: 1         # optional: its first N runs fail (a retry's second run succeeds)
        is_archived: false         # optional: an archived query cannot be executed (403)
    materialized_views:
      - name: dex_daily_volume     # or result_dex_daily_volume or dune.emulator.result_dex_daily_volume
        query_id: 1000
        performance: medium
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import uuid4

import yaml

DEFAULT_TEAM = "emulator"
# The engine tiers Dune's API documents for executions, pipelines and refreshes.
PERFORMANCE_TIERS = ("medium", "large")
# The emulator's one account: the owner of every query and view it serves.
OWNER_TEAM_ID = 1
OWNER_USER_ID = 1
_PARAMETER_PATTERN = re.compile(r"{{\s*([A-Za-z0-9_\- ]+?)\s*}}")
_VIEW_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


class CatalogError(ValueError):
    """A request or catalog file names something that does not exist or is malformed."""


class ViewConflict(CatalogError):
    """A view of that name exists already and is built by another query."""


@dataclass
class QueryDef:
    query_id: int
    name: str
    sql: str
    parameters: list[dict[str, Any]] = field(default_factory=list)
    is_private: bool = False
    description: str = ""
    execution_seconds: float | None = None
    is_archived: bool = False
    version: int = 1
    # Runs left that fail on purpose: how a retry that reruns only failed nodes is shown working.
    fail_first_runs: int = 0

    def default_parameters(self) -> dict[str, Any]:
        return {param["key"]: param.get("value") for param in self.parameters if "key" in param}

    def render_sql(self, query_parameters: Mapping[str, Any] | None) -> str:
        """Substitute ``{{name}}`` textually, as Dune does, from the request then the defaults."""
        values = {**self.default_parameters(), **(query_parameters or {})}
        missing = sorted({name for name in _PARAMETER_PATTERN.findall(self.sql) if values.get(name) is None})
        if missing:
            raise CatalogError(
                f"query {self.query_id} is missing values for parameters: {', '.join(missing)}"
            )
        return _PARAMETER_PATTERN.sub(lambda match: str(values[match.group(1)]), self.sql)

    def sql_for_run(self, query_parameters: Mapping[str, Any] | None) -> str:
        """The SQL one execution runs: :meth:`render_sql`, unless this run is one of the
        ``fail_first_runs``, which reads a column that does not exist (a real SQL error)."""
        sql = self.render_sql(query_parameters)
        if self.fail_first_runs > 0:
            self.fail_first_runs -= 1
            return "SELECT\n  fails_on_its_first_run\nFROM dex.trades"
        return sql

    def to_api(self) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "name": self.name,
            "description": self.description,
            "tags": [],
            "version": self.version,
            "parameters": self.parameters,
            "query_engine": "v2 Dune SQL",
            "query_sql": self.sql,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_unsaved": False,
            "owner": "emulator",
        }


@dataclass
class ViewDef:
    name: str  # always the full dotted name, dune.<team>.result_<short>
    query_id: int
    performance: str = "medium"
    is_private: bool = False
    cron_expression: str | None = None
    id: str = field(default_factory=lambda: str(uuid4()))
    last_execution_ids: list[str] = field(default_factory=list)
    table_size_bytes: int = 0

    def record_execution(self, execution_id: str) -> None:
        """A refresh started: newest first, as many as Dune shows (a handful)."""
        self.last_execution_ids = [execution_id, *self.last_execution_ids][:10]

    def to_list_element(self) -> dict[str, Any]:
        """As ``GET /v1/materialized-views`` lists it: ``sql_id`` is the name to query it by."""
        return {
            "id": self.id,
            "sql_id": self.name,
            "query_id": self.query_id,
            "is_private": self.is_private,
            "table_size_bytes": self.table_size_bytes,
        }

    def to_api(self) -> dict[str, Any]:
        """As ``GET /v1/materialized-views/{name}`` describes it."""
        return {
            **self.to_list_element(),
            "last_execution_ids": list(self.last_execution_ids),
            "owner_team_id": OWNER_TEAM_ID,
            "owner_user_id": OWNER_USER_ID,
        }


class Catalog:
    def __init__(self, team: str = DEFAULT_TEAM) -> None:
        if not _VIEW_NAME_PATTERN.match(team):
            raise CatalogError(f"team must be letters, digits and underscores, got {team!r}")
        self.team = team
        self.queries: dict[int, QueryDef] = {}
        self.views: dict[str, ViewDef] = {}

    def view_name(self, name: str) -> str:
        """Accept ``x``, ``result_x`` or ``dune.<team>.result_x`` and return the full name."""
        lowered = name.strip().lower()
        if lowered.startswith("dune."):
            parts = lowered.split(".")
            if len(parts) != 3 or not parts[2].startswith("result_"):
                raise CatalogError(
                    f"materialized view names look like dune.<team>.result_<name>, got {name!r}"
                )
            return lowered
        short = lowered if lowered.startswith("result_") else f"result_{lowered}"
        if not _VIEW_NAME_PATTERN.match(short):
            raise CatalogError(f"invalid materialized view name {name!r}")
        return f"dune.{self.team}.{short}"

    def find_view(self, name: str) -> ViewDef | None:
        try:
            return self.views.get(self.view_name(name))
        except CatalogError:
            return None

    def owns(self, full_name: str) -> bool:
        """Whether a full view name lies in this account's namespace ``dune.<team>``."""
        return full_name.strip().lower().startswith(f"dune.{self.team}.")

    def next_query_id(self) -> int:
        return max(self.queries, default=0) + 1

    def add_query(self, query: QueryDef) -> None:
        self.queries[query.query_id] = query

    def upsert_view(
        self,
        name: str,
        query_id: int,
        performance: str = "medium",
        is_private: bool = False,
        cron_expression: str | None = None,
    ) -> ViewDef:
        """Create the view or update the one of the same name (which must be built by the same query)."""
        if query_id not in self.queries:
            raise CatalogError(f"query {query_id} does not exist")
        if performance not in PERFORMANCE_TIERS:
            raise CatalogError(f"performance must be one of {', '.join(PERFORMANCE_TIERS)}")
        full = self.view_name(name)
        previous = self.views.get(full)
        if previous is not None and previous.query_id != query_id:
            raise ViewConflict(
                f"materialized view {full} already exists for query {previous.query_id}; "
                f"it cannot be re-created for query {query_id}"
            )
        view = ViewDef(full, query_id, performance, is_private, cron_expression)
        if previous is not None:
            view.id, view.last_execution_ids = previous.id, previous.last_execution_ids
            view.table_size_bytes = previous.table_size_bytes
        self.views[full] = view
        return view

    def referenced_views(self, sql: str) -> list[str]:
        """Known views a SQL text reads, in order of first mention: the basis of lineage."""
        found: list[str] = []
        for match in re.finditer(r"\bdune\s*\.\s*(\w+)\s*\.\s*(result_\w+)\b", sql, re.IGNORECASE):
            full = f"dune.{match.group(1).lower()}.{match.group(2).lower()}"
            if full in self.views and full not in found:
                found.append(full)
        return found

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] | None = None, team: str | None = None) -> Catalog:
        if source is None:
            text = resources.files(__package__).joinpath("default_catalog.yaml").read_text(encoding="utf-8")
            data = yaml.safe_load(text)
        elif isinstance(source, Mapping):
            data = dict(source)
        else:
            data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        if not isinstance(data, Mapping):
            raise CatalogError("a catalog must be a mapping with 'queries' and 'materialized_views'")
        catalog = cls(team or str(data.get("team") or DEFAULT_TEAM))
        for raw in data.get("queries") or []:
            catalog.add_query(_parse_query(raw))
        for raw in data.get("materialized_views") or []:
            catalog.upsert_view(str(raw["name"]), int(raw["query_id"]), str(raw.get("performance", "medium")))
        return catalog


def _parse_query(raw: Mapping[str, Any]) -> QueryDef:
    try:
        query_id = int(raw["id"] if "id" in raw else raw["query_id"])
        sql = str(raw["sql"] if "sql" in raw else raw["query_sql"])
    except KeyError as exc:
        raise CatalogError(f"catalog query needs an id and sql: {dict(raw)}") from exc
    duration = raw.get("execution_seconds")
    return QueryDef(
        query_id=query_id,
        name=str(raw.get("name", f"query {query_id}")),
        sql=sql,
        parameters=[dict(param) for param in raw.get("parameters") or []],
        is_private=bool(raw.get("is_private", False)),
        description=str(raw.get("description", "")),
        execution_seconds=float(duration) if duration is not None else None,
        is_archived=bool(raw.get("is_archived", False)),
        fail_first_runs=int(raw.get("fail_first_runs", 0)),
    )
