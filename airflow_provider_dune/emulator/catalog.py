"""The queries and materialized views the emulator knows, loaded from YAML or a dict.

Catalog format (YAML or the equivalent dict)::

    team: emulator                 # optional; views are named dune.<team>.result_<name>
    queries:
      - id: 1000
        name: DEX daily volume
        sql: SELECT ... WHERE amount_usd >= {{min_amount}}
        parameters: [{key: min_amount, type: number, value: "0"}]
        execution_seconds: 2       # optional: override the emulator-wide simulated duration
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

import yaml

DEFAULT_TEAM = "emulator"
PERFORMANCE_TIERS = ("small", "medium", "large")
_PARAMETER_PATTERN = re.compile(r"{{\s*([A-Za-z0-9_\- ]+?)\s*}}")
_VIEW_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


class CatalogError(ValueError):
    """A request or catalog file names something that does not exist or is malformed."""


@dataclass
class QueryDef:
    query_id: int
    name: str
    sql: str
    parameters: list[dict[str, Any]] = field(default_factory=list)
    is_private: bool = False
    description: str = ""
    execution_seconds: float | None = None

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

    def to_api(self) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "name": self.name,
            "description": self.description,
            "tags": [],
            "version": 1,
            "parameters": self.parameters,
            "query_engine": "v2 Dune SQL",
            "query_sql": self.sql,
            "is_private": self.is_private,
            "is_archived": False,
            "is_unsaved": False,
            "owner": "emulator",
        }


@dataclass
class ViewDef:
    name: str  # always the full dotted name, dune.<team>.result_<short>
    query_id: int
    performance: str = "medium"
    last_execution_id: str | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.name,
            "name": self.name,
            "query_id": self.query_id,
            "performance": self.performance,
            "is_private": False,
        }
        if self.last_execution_id:
            body["last_execution_id"] = self.last_execution_id
        return body


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

    def next_query_id(self) -> int:
        return max(self.queries, default=0) + 1

    def add_query(self, query: QueryDef) -> None:
        self.queries[query.query_id] = query

    def upsert_view(self, name: str, query_id: int, performance: str = "medium") -> ViewDef:
        if query_id not in self.queries:
            raise CatalogError(f"query {query_id} does not exist")
        if performance not in PERFORMANCE_TIERS:
            raise CatalogError(f"performance must be one of {', '.join(PERFORMANCE_TIERS)}")
        full = self.view_name(name)
        previous = self.views.get(full)
        view = ViewDef(full, query_id, performance, previous.last_execution_id if previous else None)
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
    )
