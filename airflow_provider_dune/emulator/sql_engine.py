"""DuckDB behind the emulator: runs SQL into result tables and serves pages from them.

DuckDB connections are not safe to share between threads, so each worker thread gets its own
cursor (a connection to the same in-memory database); the event loop only ever awaits futures.
Results live in DuckDB tables (schema ``_results``), so a million-row result costs DuckDB's
columnar storage, not Python objects, and every page is a LIMIT/OFFSET scan.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb

from airflow_provider_dune.emulator.sample_data import TABLE_STATEMENTS
from airflow_provider_dune.emulator.sql_errors import SqlError, parse_duckdb_error

RESULTS_SCHEMA = "_results"
_T = TypeVar("_T")


@dataclass(frozen=True)
class ResultInfo:
    table: str
    column_names: list[str]
    column_types: list[str]
    row_count: int
    result_set_bytes: int
    truncated: bool = False


@dataclass(frozen=True)
class Page:
    column_names: list[str]
    column_types: list[str]
    rows: list[tuple[Any, ...]]
    total_row_count: int


class QueryInterrupted(Exception):
    """The execution was cancelled while DuckDB was running it."""


class SqlJob:
    """Lets another thread interrupt a statement: DuckDB's interrupt is per connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self.cancelled = False

    def attach(self, cursor: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            if self.cancelled:
                raise QueryInterrupted
            self._cursor = cursor

    def detach(self) -> None:
        with self._lock:
            self._cursor = None

    def interrupt(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._cursor is not None:
                self._cursor.interrupt()


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_dotted(name: str) -> str:
    return ".".join(quote_identifier(part) for part in name.split("."))


class SqlEngine:
    def __init__(self, team: str, workers: int = 4) -> None:
        self._connection = duckdb.connect(":memory:", config={"threads": 2})
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dune-emulator-sql")
        self.team = team
        for statement in (
            # Materialized views resolve by their Dune name, dune.<team>.result_<name>: an
            # attached catalog "dune" with one schema per team makes that a plain table name.
            "ATTACH ':memory:' AS dune",
            f"CREATE SCHEMA IF NOT EXISTS dune.{quote_identifier(team)}",
            f"CREATE SCHEMA IF NOT EXISTS {RESULTS_SCHEMA}",
            *TABLE_STATEMENTS,
        ):
            self._connection.execute(statement)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._connection.close()

    async def call(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._connection.cursor()
            self._local.cursor = cursor
        return cursor

    def run_to_table(
        self, sql: str, table: str, job: SqlJob | None = None, max_rows: int | None = None
    ) -> ResultInfo | SqlError:
        """Blocking; run in the executor. Returns the stored result or the SQL error."""
        cursor = self._cursor()
        target = f"{RESULTS_SCHEMA}.{quote_identifier(table)}"
        prefix = f"CREATE TABLE {target} AS "
        statement = prefix + sql.strip().rstrip(";").rstrip()
        if job is not None:
            job.attach(cursor)
        try:
            cursor.execute(statement)
        except duckdb.InterruptException as exc:
            raise QueryInterrupted from exc
        except duckdb.Error as exc:
            if job is not None and job.cancelled:
                raise QueryInterrupted from exc
            return parse_duckdb_error(str(exc), statement, len(prefix))
        finally:
            if job is not None:
                job.detach()
        truncated = False
        if max_rows is not None:
            # Dune truncates oversized results (COMPLETED_PARTIAL); a row cap stands in for its 8 GB.
            total = self._scalar(f"SELECT count(*) FROM {target}")
            if total > max_rows:
                cursor.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {target} LIMIT {max_rows}")
                truncated = True
        return self._describe(table, truncated)

    def _scalar(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        row = self._cursor().execute(sql, parameters).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _describe(self, table: str, truncated: bool) -> ResultInfo:
        target = f"{RESULTS_SCHEMA}.{quote_identifier(table)}"
        described = self._cursor().execute(f"DESCRIBE {target}").fetchall()
        names = [str(row[0]) for row in described]
        types = [str(row[1]).lower() for row in described]
        row_count = self._scalar(f"SELECT count(*) FROM {target}")
        value_bytes = 0
        if names and row_count:
            # Dune's result_set_bytes counts raw value bytes plus one header line.
            sizes = " + ".join(
                f"coalesce(sum(strlen(CAST({quote_identifier(name)} AS VARCHAR))), 0)" for name in names
            )
            value_bytes = self._scalar(f"SELECT {sizes} FROM {target}")
        header_bytes = sum(len(name.encode()) for name in names)
        return ResultInfo(table, names, types, row_count, value_bytes + header_bytes, truncated)

    def copy_into_view(self, table: str, view_name: str) -> None:
        """Materialize a stored result under the view's dotted name so later SQL can read it."""
        self._cursor().execute(
            f"CREATE OR REPLACE TABLE {quote_dotted(view_name)} AS "
            f"SELECT * FROM {RESULTS_SCHEMA}.{quote_identifier(table)}"
        )

    def drop_view(self, view_name: str) -> None:
        self._cursor().execute(f"DROP TABLE IF EXISTS {quote_dotted(view_name)}")

    def drop_result(self, table: str) -> None:
        self._cursor().execute(f"DROP TABLE IF EXISTS {RESULTS_SCHEMA}.{quote_identifier(table)}")

    def page(
        self,
        table: str,
        columns: Sequence[str] | None,
        limit: int,
        offset: int,
        filters: str | None = None,
        sort_by: str | None = None,
        sample_count: int | None = None,
    ) -> Page:
        """Blocking. ``filters`` and ``sort_by`` are SQL fragments, as in Dune's API; this is a
        local test server, so they are passed to DuckDB as they come."""
        cursor = self._cursor()
        source = f"{RESULTS_SCHEMA}.{quote_identifier(table)}"
        if sample_count is not None:
            source = (
                f"(SELECT * FROM {source} USING SAMPLE reservoir({int(sample_count)} ROWS) REPEATABLE (7))"
            )
        where = f" WHERE {filters}" if filters else ""
        selected = ", ".join(quote_identifier(name) for name in columns) if columns else "*"
        total = self._scalar(f"SELECT count(*) FROM {source} AS r{where}")
        order = f" ORDER BY {sort_by}" if sort_by else ""
        cursor.execute(
            f"SELECT {selected} FROM {source} AS r{where}{order} LIMIT ? OFFSET ?", [limit, offset]
        )
        description = cursor.description or []
        rows = cursor.fetchall()
        names = [str(column[0]) for column in description]
        types = [str(column[1]).lower() for column in description]
        return Page(names, types, rows, total)
