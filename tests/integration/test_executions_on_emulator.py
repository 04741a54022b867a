"""Single executions, results, views and Assets against the local emulator: real HTTP, real SQL."""

from __future__ import annotations

import csv
import io
import json
import logging

import pytest

from airflow_provider_dune.assets import dune_view_uri
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.operators.base import RemoteRunFailed
from airflow_provider_dune.operators.dune import (
    DuneResultTooLargeForXCom,
    DuneRunQueryOperator,
    DuneRunSQLOperator,
)
from airflow_provider_dune.operators.results import DuneResultNotReady, DuneResultsToStorageOperator
from airflow_provider_dune.sensors.dune import DuneExecutionSensor
from tests.airflow_runs import DagRunResult, _task_states, _xcoms, dags_folder, run_dag_source
from tests.helpers import FakeTI

VIEW = "dune.emulator.result_dex_daily_volume"


def run_dag_with_assets(source: str, dag_id: str) -> DagRunResult:
    """``run_dag_source``, but with the DAG's assets in the database first.

    On Airflow 2.11 ``dag.test()`` skips what the DAG processor does, so a declared Dataset or
    DatasetAlias has no row and its events are dropped ("DatasetModel ... not found"). Airflow 3
    writes them itself.
    """
    import runpy
    import textwrap

    path = dags_folder() / f"{dag_id}.py"
    path.write_text(textwrap.dedent(source))
    namespace = runpy.run_path(str(path))
    dag = next(v for v in namespace.values() if getattr(v, "dag_id", None) == dag_id and hasattr(v, "test"))
    if hasattr(dag, "sync_to_db"):  # Airflow 2
        dag.sync_to_db()
    dag_run = dag.test()
    return DagRunResult(
        state=str(getattr(dag_run.state, "value", dag_run.state)),
        task_states=_task_states(dag_id, dag_run.run_id),
        xcoms=_xcoms(dag_id, dag_run.run_id),
    )


def asset_events(dag_id: str) -> list[tuple[str, dict]]:
    """(uri, extra) of every asset event a DAG's tasks emitted, on Airflow 2.11 and 3.x."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.asset import AssetEvent as Event  # Airflow 3
        from airflow.models.asset import AssetModel as Model

        key = "asset_id"
    except ImportError:
        from airflow.models.dataset import DatasetEvent as Event  # type: ignore[no-redef]
        from airflow.models.dataset import DatasetModel as Model

        key = "dataset_id"
    with create_session() as session:
        rows = (
            session.query(Model.uri, Event.extra)
            .join(Event, getattr(Event, key) == Model.id)
            .filter(Event.source_dag_id == dag_id)
            .all()
        )
        return [(uri, dict(extra or {})) for uri, extra in rows]


# --------------------------------------------------------------- query operator through Airflow


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.3)
@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_query_operator_runs_and_hands_status_downstream(dune_emulator, deferrable):
    dag_id = f"dune_query_op_{deferrable}"
    result = run_dag_source(
        f"""
        import datetime
        from airflow_provider_dune.operators.dune import DuneRunQueryOperator
        try:
            from airflow.sdk import DAG
        except ImportError:
            from airflow import DAG

        with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
            DuneRunQueryOperator(
                task_id="run", query_id=1001, query_parameters={{"min_volume_usd": 0}},
                poll_interval=0.05, deferrable={deferrable}, defer_after=0, push_rows_to_xcom=True,
            )
        """,
        dag_id,
    )
    assert result.state == "success"
    execution_id = result.xcom("run")
    assert execution_id == result.xcom("run", "execution_id")
    execution = result.xcom("run", "execution")
    assert execution["state"] == "QUERY_STATE_COMPLETED"
    assert execution["submitted_at"] and execution["execution_ended_at"]
    meta = execution["result_metadata"]
    assert meta["column_names"] == ["project", "trades", "volume_usd"]
    rows = result.xcom("run", "rows")
    assert len(rows) == meta["total_row_count"] > 0
    assert rows == list(DuneHook().iter_results(execution_id))
    assert result.xcom("run", "dune_query_url") == "https://dune.com/queries/1001"
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/query/1001/execute") == 1
    assert dune_emulator.request_log.count(key_in_url=True) == 0


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_failed_query_fails_the_task(dune_emulator, deferrable):
    dag_id = f"dune_query_fail_{deferrable}"
    result = run_dag_source(
        f"""
        import datetime
        from airflow_provider_dune.operators.dune import DuneRunQueryOperator
        try:
            from airflow.sdk import DAG
        except ImportError:
            from airflow import DAG

        with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
            DuneRunQueryOperator(
                task_id="run", query_id=1002, poll_interval=0.05, deferrable={deferrable}, defer_after=0
            )
        """,
        dag_id,
    )
    assert result.state == "failed"
    assert result.xcom("run", "execution")["state"] == "QUERY_STATE_FAILED"


def test_failed_query_message_has_type_message_line_and_column(dune_emulator):
    with pytest.raises(RemoteRunFailed) as err:
        DuneRunQueryOperator(task_id="t", query_id=1002, poll_interval=0.05).execute({"ti": FakeTI()})
    text = str(err.value)
    assert "failed: FAILED_TYPE_EXECUTION_FAILED" in text
    assert "amount_usd_typo" in text
    assert "(line 3, column 3)" in text


# --------------------------------------------------------------- SQL operator, rows to XCom


def test_sql_operator_pushes_rows_when_asked(dune_emulator):
    ti = FakeTI()
    op = DuneRunSQLOperator(
        task_id="t",
        sql="SELECT range AS n, 'row ' || range AS label FROM range(5)",
        poll_interval=0.05,
        push_rows_to_xcom=True,
    )
    execution_id = op.execute({"ti": ti})
    assert ti.pushed["execution_id"] == execution_id
    assert ti.pushed["rows"] == [{"n": i, "label": f"row {i}"} for i in range(5)]
    assert ti.pushed["execution"]["result_metadata"]["total_row_count"] == 5


def test_rows_past_the_xcom_limit_fail_clearly(dune_emulator):
    ti = FakeTI()
    op = DuneRunQueryOperator(
        task_id="t", query_id=1004, poll_interval=0.05, push_rows_to_xcom=True, max_xcom_rows=10
    )
    with pytest.raises(DuneResultTooLargeForXCom, match=r"1,000,000 rows than max_xcom_rows=10"):
        op.execute({"ti": ti})
    assert "rows" not in ti.pushed
    # Refused from the metadata alone: not one results page was read.
    assert dune_emulator.request_log.count(method="GET", path_prefix="/api/v1/execution/") > 0
    assert not any("/results" in e.path for e in dune_emulator.request_log.filter())


# --------------------------------------------------------------- partial results


def logged(caplog, capsys) -> str:
    """Task log text: Airflow 2 logs through logging, Airflow 3 through structlog to stdout."""
    return caplog.text + capsys.readouterr().out


@pytest.mark.dune_emulator(max_result_rows=50)
def test_partial_result_fails_unless_allowed_and_always_warns(dune_emulator, caplog, capsys):
    caplog.set_level(logging.WARNING)
    with pytest.raises(RemoteRunFailed, match=r"PARTIAL result.*allow_partial_results=True"):
        DuneRunQueryOperator(task_id="t", query_id=1004, poll_interval=0.05).execute({"ti": FakeTI()})
    assert "PARTIAL result" in logged(caplog, capsys)

    caplog.clear()
    ti = FakeTI()
    op = DuneRunQueryOperator(task_id="t", query_id=1004, poll_interval=0.05, allow_partial_results=True)
    execution_id = op.execute({"ti": ti})
    assert ti.pushed["execution"]["state"] == "QUERY_STATE_COMPLETED_PARTIAL"
    assert "PARTIAL result" in logged(caplog, capsys)
    rows = list(DuneHook().iter_results(execution_id, page_size=20, allow_partial_results=True))
    assert len(rows) == 50


@pytest.mark.dune_emulator(max_result_rows=50)
def test_storage_refuses_a_partial_result_unless_allowed(dune_emulator, tmp_path):
    execution_id = DuneHook().execute_query(1004)
    dune_emulator.wait_for_execution(execution_id)
    op = DuneResultsToStorageOperator(task_id="s", execution_id=execution_id, path=str(tmp_path / "p.csv"))
    with pytest.raises(DuneResultNotReady, match="PARTIAL"):
        op.execute({"ti": FakeTI()})
    op = DuneResultsToStorageOperator(
        task_id="s", execution_id=execution_id, path=str(tmp_path / "p.csv"), allow_partial_results=True
    )
    assert op.execute({"ti": FakeTI()})["rows"] == 50


# --------------------------------------------------------------- cancel and the sensor


@pytest.mark.dune_emulator(execution_seconds=5)
def test_on_kill_cancels_and_the_sensor_reports_it(dune_emulator):
    op = DuneRunQueryOperator(task_id="t", query_id=1003, wait_for_termination=False)
    execution_id = op.execute({"ti": FakeTI()})
    op.on_kill()
    assert dune_emulator.execution_status(execution_id)["state"] == "QUERY_STATE_CANCELLED"
    sensor = DuneExecutionSensor(task_id="w", execution_id=execution_id)
    with pytest.raises(RemoteRunFailed, match=f"Dune execution {execution_id} .*was cancelled"):
        sensor.poke({"ti": FakeTI()})


def test_expired_result_fails_with_a_plain_message(dune_emulator):
    execution_id = DuneHook().execute_query(1003)
    dune_emulator.wait_for_execution(execution_id)
    dune_emulator.expire_execution(execution_id)
    with pytest.raises(RemoteRunFailed, match="expired: its result is no longer available"):
        DuneExecutionSensor(task_id="w", execution_id=execution_id).poke({"ti": FakeTI()})


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.4)
@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_execution_sensor_waits(dune_emulator, deferrable):
    dag_id = f"dune_exec_sensor_{deferrable}"
    result = run_dag_source(
        f"""
        import datetime
        from airflow_provider_dune.operators.dune import DuneRunSQLOperator
        from airflow_provider_dune.sensors.dune import DuneExecutionSensor
        try:
            from airflow.sdk import DAG
        except ImportError:
            from airflow import DAG

        with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
            start = DuneRunSQLOperator(task_id="start", sql="SELECT 1 AS one", wait_for_termination=False)
            wait = DuneExecutionSensor(
                task_id="wait", execution_id=start.output, poke_interval=0.05, deferrable={deferrable},
                defer_after=0,
            )
        """,
        dag_id,
    )
    assert result.state == "success"
    assert result.xcom("wait", "execution")["state"] == "QUERY_STATE_COMPLETED"


# --------------------------------------------------------------- results to storage


def _expected(execution_id, **paging):
    return list(DuneHook().iter_results(execution_id, **paging))


@pytest.fixture
def dex_execution(dune_emulator):
    execution_id = DuneHook().execute_query(1000)
    dune_emulator.wait_for_execution(execution_id)
    return execution_id


def test_csv_jsonl_and_parquet_hold_the_same_rows(dune_emulator, dex_execution, tmp_path):
    expected = _expected(dex_execution)
    assert len(expected) > 10
    written = {}
    for fmt in ("csv", "jsonl", "parquet"):
        target = tmp_path / "out" / f"dex.{fmt}"
        op = DuneResultsToStorageOperator(
            task_id=f"to_{fmt}", execution_id=dex_execution, path=f"file://{target}", format=fmt, page_size=4
        )
        written[fmt] = op.execute({"ti": FakeTI()})
        assert written[fmt]["rows"] == len(expected)
        assert written[fmt]["path"].endswith(f"dex.{fmt}")

    csv_rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "dex.csv").read_text())))
    assert [r["project"] for r in csv_rows] == [r["project"] for r in expected]
    assert [float(r["volume_usd"]) for r in csv_rows] == [r["volume_usd"] for r in expected]
    assert [r["block_date"] for r in csv_rows] == [r["block_date"] for r in expected]

    lines = (tmp_path / "out" / "dex.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == expected

    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out" / "dex.parquet")
    assert table.num_rows == len(expected)
    assert table.column_names == ["block_date", "project", "trades", "volume_usd"]
    assert str(table.schema.field("trades").type) == "int64"
    assert table.to_pylist() == [{**r, "block_date": str(r["block_date"])} for r in expected]
    # One row group per page: the writer never held more than a page.
    assert pq.ParquetFile(tmp_path / "out" / "dex.parquet").num_row_groups == -(-len(expected) // 4)


def test_paging_a_million_rows_across_many_pages(dune_emulator, tmp_path):
    execution_id = DuneHook().execute_query(1004)
    dune_emulator.wait_for_execution(execution_id)
    target = tmp_path / "million.csv"
    result = DuneResultsToStorageOperator(
        task_id="t", execution_id=execution_id, path=str(target), page_size=125_000
    ).execute({"ti": FakeTI()})
    assert result["rows"] == 1_000_000
    lines = target.read_text().splitlines()
    assert lines[0] == "n,bucket" and lines.count("n,bucket") == 1
    assert lines[1] == "0,0" and lines[-1] == "999999,0"
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1_000_000))
    assert (
        dune_emulator.request_log.count(method="GET", path_prefix=f"/api/v1/execution/{execution_id}/results")
        == 8
    )


def test_iter_results_follows_pages_with_columns_filters_and_sort(dune_emulator):
    execution_id = DuneHook().execute_query(1004)
    dune_emulator.wait_for_execution(execution_id)
    rows = list(
        DuneHook().iter_results(
            execution_id, columns=["n"], filters="bucket = 3", sort_by="n desc", page_size=10_000
        )
    )
    assert len(rows) == len([n for n in range(1_000_000) if n % 7 == 3])
    assert rows[0] == {"n": 999_995} and rows[-1] == {"n": 3}
    assert (
        dune_emulator.request_log.count(method="GET", path_prefix=f"/api/v1/execution/{execution_id}/results")
        == 15
    )


def test_storage_reads_the_execution_from_an_upstream_xcom(dune_emulator, dex_execution, tmp_path):
    ti = FakeTI({("run", "execution_id"): dex_execution})
    result = DuneResultsToStorageOperator(
        task_id="t", source_task_id="run", path=str(tmp_path / "x.jsonl"), format="jsonl"
    ).execute({"ti": ti})
    assert result["execution_id"] == dex_execution
    assert result["rows"] == len(_expected(dex_execution))


# --------------------------------------------------------------- pipelines, views and Assets


@pytest.mark.usefixtures("airflow_db")
def test_query_pipeline_result_of_a_node_and_view_assets(dune_emulator, tmp_path):
    dag_id = "dune_query_pipeline_to_storage"
    result = run_dag_with_assets(
        f"""
        import datetime
        from airflow_provider_dune.operators.dune import DuneRunQueryPipelineOperator
        from airflow_provider_dune.operators.results import DuneResultsToStorageOperator
        try:
            from airflow.sdk import DAG
        except ImportError:
            from airflow import DAG

        with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
            run = DuneRunQueryPipelineOperator(
                task_id="run", query_id=1001, poll_interval=0.05, emit_view_assets=True
            )
            by_query = DuneResultsToStorageOperator(
                task_id="by_query", source_task_id="run", query_id=1001,
                path="{tmp_path}/q.jsonl", format="jsonl",
            )
            by_node = DuneResultsToStorageOperator(
                task_id="by_node", source_task_id="run", pipeline_node_id=2, path="{tmp_path}/n.csv"
            )
            run >> [by_query, by_node]
        """,
        dag_id,
    )
    assert result.state == "success", result.task_states
    nodes = result.xcom("run", "node_executions")
    assert [(n["type"], n["status"]) for n in nodes] == [
        ("materialized_view", "completed"),
        ("query", "completed"),
    ]
    assert result.xcom("by_query")["execution_id"] == nodes[1]["execution_id"]
    assert result.xcom("by_node")["execution_id"] == nodes[1]["execution_id"]
    assert result.xcom("by_query")["rows"] == result.xcom("by_node")["rows"] > 0
    assert (
        dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/query/1001/pipeline/execute") == 1
    )
    events = asset_events(dag_id)
    assert [uri for uri, _ in events] == [dune_view_uri(VIEW)]
    assert events[0][1]["pipeline_execution_id"] == result.xcom("run", "pipeline_execution_id")


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("name", [VIEW, "dex_daily_volume"], ids=["full-name", "short-name"])
def test_refresh_view_emits_its_asset(dune_emulator, name):
    dag_id = f"dune_refresh_view_{name.count('.')}"
    result = run_dag_with_assets(
        f"""
        import datetime
        from airflow_provider_dune.operators.dune import DuneRefreshMaterializedViewOperator
        try:
            from airflow.sdk import DAG
        except ImportError:
            from airflow import DAG

        with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
            DuneRefreshMaterializedViewOperator(
                task_id="refresh", name="{name}", poll_interval=0.05, deferrable=True, defer_after=0
            )
        """,
        dag_id,
    )
    assert result.state == "success"
    execution_id = result.xcom("refresh")
    assert dune_emulator.execution_status(execution_id)["state"] == "QUERY_STATE_COMPLETED"
    # Dune answers a GET by short name 404: the full name comes from the refresh answer's sql_id.
    assert result.xcom("refresh", "materialized_view") == VIEW
    assert dune_emulator.request_log.count(method="GET", path_prefix="/api/v1/materialized-views") == 0
    events = asset_events(dag_id)
    assert [uri for uri, _ in events] == [dune_view_uri(VIEW)]
    assert events[0][1]["execution_id"] == execution_id


def test_refresh_operator_declares_literal_views_as_outlets():
    from airflow_provider_dune.operators.dune import DuneRefreshMaterializedViewOperator

    op = DuneRefreshMaterializedViewOperator(task_id="r", name=VIEW)
    assert [getattr(o, "uri", None) for o in op.outlets] == [dune_view_uri(VIEW)]
    templated = DuneRefreshMaterializedViewOperator(task_id="r2", name="{{ params.view }}")
    assert [getattr(o, "name", None) for o in templated.outlets] == ["dune-materialized-views"]


@pytest.mark.usefixtures("airflow_db")
def test_views_named_in_nodes_are_declared_outlets_and_lineage_views_need_opting_in(dune_emulator):
    from airflow_provider_dune.operators.dune import DuneRunPipelineOperator

    explicit = DuneRunPipelineOperator(
        task_id="explicit",
        nodes=[
            {"id": 1, "materialized_view_refresh": {"name": VIEW}},
            {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1001}},
        ],
    )
    assert [getattr(o, "uri", None) for o in explicit.outlets] == [dune_view_uri(VIEW)]
    assert DuneRunPipelineOperator(task_id="lineage", query_id=1001).outlets == []
    opted_in = DuneRunPipelineOperator(task_id="opted", query_id=1001, emit_view_assets=True)
    assert [getattr(o, "name", None) for o in opted_in.outlets] == ["dune-materialized-views"]

    dag_id = "dune_explicit_nodes_assets"
    result = run_dag_with_assets(
        f"""
        import datetime
        from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
        try:
            from airflow.sdk import DAG
        except ImportError:
            from airflow import DAG

        with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
            DuneRunPipelineOperator(
                task_id="explicit",
                poll_interval=0.05,
                nodes=[{{"id": 1, "materialized_view_refresh": {{"name": "{VIEW}"}}}},
                       {{"id": 2, "dependencies": [1], "query_execution": {{"query_id": 1001}}}}],
            )
            DuneRunPipelineOperator(task_id="lineage", query_id=1003, poll_interval=0.05)
        """,
        dag_id,
    )
    assert result.state == "success", result.task_states
    events = asset_events(dag_id)
    assert [uri for uri, _ in events] == [dune_view_uri(VIEW)]
    assert events[0][1]["pipeline_execution_id"] == result.xcom("explicit", "pipeline_execution_id")
