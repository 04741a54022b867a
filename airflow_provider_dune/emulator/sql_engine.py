"""DuckDB behind the emulator: runs SQL into result tables and serves pages from them.

DuckDB connections are not safe to share between threads, so each worker thread gets its own
cursor (a connection to the same in-memory database); the event loop only ever awaits futures.
Results live in DuckDB tables (schema ``_results``), so a million-row result costs DuckDB's
columnar storage, not Python objects, and every page is a LIMIT/OFFSET scan.

The SQL comes from whoever can reach the server, so DuckDB runs locked down
(:data:`LOCKED_DOWN`): no files, no network, no extensions, no Python objects, nothing
spilled to disk, a memory cap, and a configuration no statement can change. Each execution is
one ``SELECT`` (a second statement after ``;`` is refused, not run), and a statement that runs
past ``statement_seconds`` is interrupted.
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
DEFAULT_MEMORY_LIMIT = "1GB"
DEFAULT_STATEMENT_SECONDS = 30.0
# DuckDB's defaults let SQL read and write any file the user can, fetch and load extensions
# from the internet and scan the Python objects of the calling frames. Set at connect time,
# then locked: no statement can turn any of it back on.
LOCKED_DOWN: dict[str, Any] = {
    "enable_external_access": False,  # files, URLs, ATTACH of files, COPY, extension loading
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
    "temp_directory": "",  # nothing spills to disk: a query past the memory cap fails instead
    "lock_configuration": True,
}
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


class StatementTimedOut(Exception):
    """A results read (``filters``, ``sort_by``) ran past the engine's time cap."""


class SqlJob:
    """Lets another thread interrupt a statement: DuckDB's interrupt is per connection.

    Interrupted for one of two reasons: a cancel (:meth:`interrupt`) or the time cap
    (:meth:`time_out`); the engine reports them differently.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self.cancelled = False
        self.timed_out = False

    def attach(self, cursor: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            if self.cancelled or self.timed_out:
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

    def time_out(self) -> None:
        with self._lock:
            if self.cancelled:
                return
            self.timed_out = True
            if self._cursor is not None:
                self._cursor.interrupt()


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_dotted(name: str) -> str:
    return ".".join(quote_identifier(part) for part in name.split("."))


class SqlEngine:
    """:param memory_limit: DuckDB's cap on memory for the data and every query (e.g. ``"1GB"``).
    :param statement_seconds: a statement that runs longer is interrupted."""

    def __init__(
        self,
        team: str,
        workers: int = 4,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        statement_seconds: float = DEFAULT_STATEMENT_SECONDS,
    ) -> None:
        self._connection = duckdb.connect(
            ":memory:", config={**LOCKED_DOWN, "threads": 2, "memory_limit": memory_limit}
        )
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dune-emulator-sql")
        self.team = team
        self.statement_seconds = statement_seconds
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

    async def call_capped(self, job: SqlJob, function: Callable[..., _T], *args: Any) -> _T:
        """:meth:`call` for a statement that takes ``job`` as its last argument, interrupted
        (:meth:`SqlJob.time_out`) once it has taken ``statement_seconds``."""
        timer = asyncio.get_running_loop().call_later(self.statement_seconds, job.time_out)
        try:
            return await self.call(function, *args, job)
        finally:
            timer.cancel()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._connection.cursor()
            self._local.cursor = cursor
        return cursor

    def _timed_out_error(self) -> str:
        return (
            f"Query exceeded the emulator's time limit of {self.statement_seconds:g} seconds and was "
            "interrupted"
        )

    def run_to_table(
        self, sql: str, table: str, max_rows: int | None = None, job: SqlJob | None = None
    ) -> ResultInfo | SqlError:
        """Blocking; run in the executor. Returns the stored result or the SQL error."""
        cursor = self._cursor()
        query = sql.strip().rstrip(";").rstrip()
        refusal = _not_one_select(cursor, query)
        if refusal is not None:
            return SqlError(refusal)
        target = f"{RESULTS_SCHEMA}.{quote_identifier(table)}"
        prefix = f"CREATE TABLE {target} AS "
        statement = prefix + query
        try:
            if job is not None:
                job.attach(cursor)
            try:
                cursor.execute(statement)
            finally:
                if job is not None:
                    job.detach()
        except (duckdb.InterruptException, QueryInterrupted) as exc:
            if job is not None and job.timed_out:
                return SqlError(self._timed_out_error())
            raise QueryInterrupted from exc
        except duckdb.Error as exc:
            if job is not None and job.cancelled:
                raise QueryInterrupted from exc
            if job is not None and job.timed_out:
                return SqlError(self._timed_out_error())
            return parse_duckdb_error(str(exc), statement, len(prefix))
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
        job: SqlJob | None = None,
    ) -> Page:
        """Blocking. ``filters`` and ``sort_by`` are SQL fragments, as in Dune's API, so each
        statement they are part of must still parse as one ``SELECT``; the lock-down does the rest."""
        cursor = self._cursor()
        source = f"{RESULTS_SCHEMA}.{quote_identifier(table)}"
        if sample_count is not None:
            source = (
                f"(SELECT * FROM {source} USING SAMPLE reservoir({int(sample_count)} ROWS) REPEATABLE (7))"
            )
        where = f" WHERE {filters}" if filters else ""
        selected = ", ".join(quote_identifier(name) for name in columns) if columns else "*"
        order = f" ORDER BY {sort_by}" if sort_by else ""
        counting = f"SELECT count(*) FROM {source} AS r{where}"
        reading = f"SELECT {selected} FROM {source} AS r{where}{order} LIMIT ? OFFSET ?"
        for statement in (counting, reading):
            refusal = _not_one_select(cursor, statement)
            if refusal is not None:
                raise ValueError(f"filters and sort_by must be expressions: {refusal}")
        try:
            if job is not None:
                job.attach(cursor)
            try:
                total = self._scalar(counting)
                cursor.execute(reading, [limit, offset])
                description = cursor.description or []
                rows = cursor.fetchall()
            finally:
                if job is not None:
                    job.detach()
        except (duckdb.InterruptException, QueryInterrupted) as exc:
            raise StatementTimedOut(self._timed_out_error()) from exc
        names = [str(column[0]) for column in description]
        types = [str(column[1]).lower() for column in description]
        return Page(names, types, rows, total)


def _not_one_select(cursor: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """Why ``sql`` is not exactly one ``SELECT``, or ``None``. SQL that does not parse is left to
    ``execute``, which reports the syntax error with its position (and runs nothing)."""
    try:
        statements = cursor.extract_statements(sql)
    except duckdb.Error:
        return None
    if len(statements) != 1:
        return (
            f"the emulator runs one SQL statement per execution, got {len(statements)}; "
            "remove the ';' and what follows it"
        )
    if statements[0].type != duckdb.StatementType.SELECT:
        return f"the emulator runs SELECT queries only, got a {statements[0].type.name} statement"
    return None
