"""Moving a Dune result out of Dune: stream it, page by page, to any Airflow object storage path."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import timedelta
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, Literal

from airflow.providers.common.compat.sdk import BaseOperator, ObjectStoragePath

from airflow_provider_dune.exceptions import DuneConfigurationError, DuneError
from airflow_provider_dune.hooks.dune import DEFAULT_RESULT_PAGE_ROWS, DuneHook
from airflow_provider_dune.links.dune import DUNE_QUERY_URL, DuneQueryLink
from airflow_provider_dune.models.dune import ExecutionStatus, ResultPage, find_node_execution
from airflow_provider_dune.operators.base import DEFAULT_TIMEOUT, push_xcom
from airflow_provider_dune.operators.export_paths import path_under, write_atomically
from airflow_provider_dune.operators.result_encoding import arrow_schema, json_line, page_table
from airflow_provider_dune.runs.base import RunTimedOut, wait_for_run
from airflow_provider_dune.runs.dune import DuneExecutionRun
from airflow_provider_dune.runs.latest import EXECUTED, RESULT_SOURCE_KEY, REUSED, fresh_result, latest_result
from airflow_provider_dune.runs.outcome import RunOutcome
from airflow_provider_dune.validation import optional_positive_seconds, positive_seconds

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

ResultFormat = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")


class DuneResultNotReady(DuneError):
    """The execution has no result to copy: still running, failed, cancelled, expired or partial."""


class DuneResultsToStorageOperator(BaseOperator):
    """
    Streams the result of a Dune execution to a file on Airflow object storage.

    The result is read page by page (``page_size`` rows a request) and each page is written
    before the next is fetched, so memory stays flat however large the result is. The path is
    an Airflow ``ObjectStoragePath``: ``file:///data/x.csv``, ``s3://bucket/x.parquet``,
    ``gs://...`` or anything else Airflow's object storage (fsspec) reaches, with
    ``storage_conn_id`` for its credentials. Returns ``{"path", "rows", "format",
    "execution_id"}``.

    The export is written to a hidden temporary object beside ``path`` and published under
    ``path`` only after the last page (a rename on local disks, copy and delete on object
    stores): a failed export leaves the previous file, or none, never a truncated one. Numbers
    keep every digit: CSV and JSON Lines carry Dune's own text, and Parquet columns take
    lossless types (``decimal(p,s)`` as an Arrow decimal, ``ubigint`` as uint64).

    Say which execution in one of three ways:

    * ``execution_id``: directly, or templated, e.g. ``"{{ ti.xcom_pull('run_query') }}"``.
    * ``source_task_id`` alone: the ``execution_id`` XCom of a ``DuneRunQueryOperator``,
      ``DuneRunSQLOperator`` or ``DuneRefreshMaterializedViewOperator`` task.
    * ``source_task_id`` with ``pipeline_node_id`` or ``query_id``: one node of a pipeline operator's
      ``node_executions`` XCom.
    * ``query_id`` alone: the query's latest result (``GET /v1/query/{query_id}/results``), with
      no new execution. With ``max_result_age``, a latest result older than that (or none) makes
      the task execute the query first and wait for it (in the worker, ``poll_interval`` apart,
      ``timeout`` at most). XCom ``result_source`` says ``reused`` or ``executed``.

    :param path: where to write, a URL or ``ObjectStoragePath``; ``{{ ds }}`` and friends work.
        With ``base_path``, a path relative to it. (templated)
    :param base_path: the folder every export of this task must stay inside, e.g.
        ``"s3://bucket/dune/"``. ``path`` is then joined to it, and a rendered ``path`` that
        leaves it (``..``, an absolute path or another URL) fails the task before anything is
        read or written. Not templated: it is the fence around what templates produce.
    :param format: ``csv`` (Dune's own CSV, header once), ``jsonl`` (one JSON object a line) or
        ``parquet`` (one row group a page; needs ``pip install 'airflow-provider-dune[parquet]'``).
    :param execution_id: the execution whose result to copy. (templated)
    :param source_task_id: the task whose XCom names the execution. (templated)
    :param pipeline_node_id: with ``source_task_id`` of a pipeline task: the node whose result to copy.
        (templated)
    :param query_id: with ``source_task_id`` of a pipeline task: the node running this query;
        alone: the query whose latest result to copy. (templated)
    :param max_result_age: with ``query_id`` alone: seconds (or a ``timedelta``) the latest
        result may be old; an older one is not copied but replaced by a new execution.
    :param poll_interval: seconds between status reads while such an execution runs.
    :param timeout: seconds such an execution may take at most (a day by default).
    :param columns: only these columns. (templated)
    :param filters: a filter Dune applies to the rows, e.g. ``"volume_usd > 1000"``. (templated)
    :param sort_by: sort order Dune applies, e.g. ``"volume_usd desc"``. (templated)
    :param page_size: rows per request.
    :param allow_partial_results: copy a truncated (``COMPLETED_PARTIAL``) result instead of
        failing; a warning is logged either way.
    :param storage_conn_id: Airflow connection for the object store (not needed for local files).
    :param dune_conn_id: the Airflow connection holding the Dune API key.
    """

    template_fields: Sequence[str] = (
        "path",
        "execution_id",
        "source_task_id",
        "pipeline_node_id",
        "query_id",
        "columns",
        "filters",
        "sort_by",
    )
    ui_color = "#f4603e"
    operator_extra_links = (DuneQueryLink(),)

    def __init__(
        self,
        *,
        path: str | ObjectStoragePath,
        format: ResultFormat = "csv",
        base_path: str | ObjectStoragePath | None = None,
        execution_id: str | None = None,
        source_task_id: str | None = None,
        pipeline_node_id: int | str | None = None,
        query_id: int | str | None = None,
        columns: list[str] | None = None,
        filters: str | None = None,
        sort_by: str | list[str] | None = None,
        page_size: int = DEFAULT_RESULT_PAGE_ROWS,
        allow_partial_results: bool = False,
        storage_conn_id: str | None = None,
        dune_conn_id: str = DuneHook.default_conn_name,
        max_result_age: float | timedelta | None = None,
        poll_interval: float = 10,
        timeout: float | None = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if format not in FORMATS:
            raise DuneConfigurationError(f"format must be one of {', '.join(FORMATS)}, got {format!r}.")
        latest = query_id is not None and execution_id is None and source_task_id is None
        if not latest and (execution_id is None) == (source_task_id is None):
            raise DuneConfigurationError(
                "Give exactly one of execution_id, source_task_id (the task whose XCom names it), or "
                "query_id alone (the query's latest result)."
            )
        if pipeline_node_id is not None and source_task_id is None:
            raise DuneConfigurationError("pipeline_node_id picks a node of source_task_id's pipeline.")
        if max_result_age is not None and not latest:
            raise DuneConfigurationError(
                "max_result_age applies to query_id alone (the query's latest result, or a new run)."
            )
        if pipeline_node_id is not None and query_id is not None:
            raise DuneConfigurationError("Give pipeline_node_id or query_id, not both.")
        if page_size <= 0:
            raise DuneConfigurationError(f"page_size must be a positive number of rows, got {page_size}.")
        if base_path is not None and not isinstance(path, str):
            raise DuneConfigurationError("With base_path, give path as a string relative to it.")
        if format == "parquet":
            _require_pyarrow()
        self.path = path
        self.format = format
        self.base_path = base_path
        self.execution_id = execution_id
        self.source_task_id = source_task_id
        self.pipeline_node_id = pipeline_node_id
        self.query_id = query_id
        self.columns = columns
        self.filters = filters
        self.sort_by = sort_by
        self.page_size = page_size
        self.allow_partial_results = allow_partial_results
        self.storage_conn_id = storage_conn_id
        self.dune_conn_id = dune_conn_id
        self.max_result_age = optional_positive_seconds(max_result_age, "max_result_age")
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        self.timeout = optional_positive_seconds(timeout, "timeout")

    @cached_property
    def hook(self) -> DuneHook:
        return DuneHook(self.dune_conn_id)

    def resolve_execution_id(self, context: Context) -> str:
        if self.execution_id:
            return str(self.execution_id)
        if self.source_task_id is None:
            return self._latest_execution_id(context)
        ti = context["ti"]
        if self.pipeline_node_id is None and self.query_id is None:
            value = ti.xcom_pull(task_ids=self.source_task_id, key="execution_id")
            if not value:
                raise DuneConfigurationError(
                    f"Task {self.source_task_id!r} pushed no 'execution_id' XCom. For a pipeline task, "
                    "also give pipeline_node_id or query_id."
                )
            return str(value)
        nodes = ti.xcom_pull(task_ids=self.source_task_id, key="node_executions")
        if not nodes:
            raise DuneConfigurationError(f"Task {self.source_task_id!r} pushed no 'node_executions' XCom.")
        return find_node_execution(
            nodes,
            node_id=int(self.pipeline_node_id) if self.pipeline_node_id is not None else None,
            query_id=int(self.query_id) if self.query_id is not None else None,
        )

    def _latest_execution_id(self, context: Context) -> str:
        """The execution behind the query's latest result, or a new one when that is too old."""
        if self.max_result_age is None:
            page = latest_result(self.hook, self.query_id)  # type: ignore[arg-type]
            if page is None:
                raise DuneResultNotReady(f"Query {self.query_id} has no result on Dune yet; run it first.")
            return page.execution_id
        page = fresh_result(self.hook, self.query_id, self.max_result_age, self.log)  # type: ignore[arg-type]
        push_xcom(self, context, RESULT_SOURCE_KEY, REUSED if page is not None else EXECUTED)
        if page is not None:
            return page.execution_id
        run = DuneExecutionRun(
            self.hook,
            self.hook.execute_query(self.query_id),  # type: ignore[arg-type]
            allow_partial_results=self.allow_partial_results,
        )
        self.log.info("Started %s; waiting for it before the export.", run.label)
        try:
            state = wait_for_run(run, poll_interval=self.poll_interval, timeout=self.timeout, log=self.log)
        except RunTimedOut:
            run.cancel()
            raise
        if state.outcome is not RunOutcome.SUCCEEDED:
            raise DuneResultNotReady(f"No result to copy: {state.message}")
        return run.execution_id

    def execute(self, context: Context) -> dict[str, Any]:
        execution_id = self.resolve_execution_id(context)
        path = self.target_path()
        status = self._check_result_ready(execution_id)
        if status.query_id:
            push_xcom(self, context, DuneQueryLink.key, DUNE_QUERY_URL.format(query_id=status.query_id))
        writer = {"csv": self._write_csv, "jsonl": self._write_jsonl, "parquet": self._write_parquet}[
            self.format
        ]
        rows = write_atomically(path, lambda out: writer(execution_id, out))
        self.log.info("Wrote %d rows of Dune execution %s to %s (%s).", rows, execution_id, path, self.format)
        return {"path": str(path), "rows": rows, "format": self.format, "execution_id": execution_id}

    def target_path(self) -> ObjectStoragePath:
        """The rendered ``path``, inside ``base_path`` when one is given."""
        if self.base_path is not None:
            return path_under(self._storage_path(self.base_path), str(self.path))
        return self._storage_path(self.path)

    def _storage_path(self, url: str | ObjectStoragePath) -> ObjectStoragePath:
        if isinstance(url, ObjectStoragePath):
            return url
        if self.storage_conn_id:
            return ObjectStoragePath(url, conn_id=self.storage_conn_id)
        return ObjectStoragePath(url)

    def _check_result_ready(self, execution_id: str) -> ExecutionStatus:
        status = self.hook.get_execution_status(execution_id)
        if status.is_partial:
            self.log.warning("%s", status.partial_warning())
        if status.decide(allow_partial_results=self.allow_partial_results) is not RunOutcome.SUCCEEDED:
            message = status.end_message(allow_partial_results=self.allow_partial_results)
            if status.outcome is RunOutcome.RUNNING:
                message = f"{status.label()} has not finished (state {status.state}); wait for it first."
            raise DuneResultNotReady(f"No result to copy: {message}")
        return status

    def _pages(self, execution_id: str) -> Iterator[ResultPage]:
        return self.hook.iter_result_pages(execution_id, exact_numbers=True, **self._paging())

    def _paging(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "filters": self.filters,
            "sort_by": self.sort_by,
            "page_size": self.page_size,
            "allow_partial_results": self.allow_partial_results,
        }

    def _write_csv(self, execution_id: str, out: IO[bytes]) -> int:
        records = 0
        for chunk in self.hook.iter_results_csv(execution_id, **self._paging()):
            out.write(chunk)
            # Each chunk is whole pages, so parsing it counts rows exactly, quoted newlines included.
            records += sum(1 for _ in csv.reader(io.StringIO(chunk.decode("utf-8", errors="replace"))))
        return max(0, records - 1)  # the header

    def _write_jsonl(self, execution_id: str, out: IO[bytes]) -> int:
        rows = 0
        for page in self._pages(execution_id):
            out.write("".join(json_line(row) for row in page.rows).encode())
            rows += len(page.rows)
        return rows

    def _write_parquet(self, execution_id: str, out: IO[bytes]) -> int:
        pa, pq = _require_pyarrow()
        writer = None
        rows = 0
        try:
            for page in self._pages(execution_id):
                if writer is None:
                    schema = arrow_schema(
                        pa, page.column_names or list(page.rows[0] if page.rows else []), page.column_types
                    )
                    writer = pq.ParquetWriter(out, schema)
                writer.write_table(page_table(pa, page.rows, writer.schema))
                rows += len(page.rows)
        finally:
            if writer is not None:
                writer.close()
        return rows


def _require_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DuneConfigurationError(
            "format='parquet' needs pyarrow: pip install 'airflow-provider-dune[parquet]'."
        ) from None
    return pa, pq
