"""Every example DAG parses, and runs end to end through real Airflow against the local emulator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.airflow_runs import dags_folder, run_dag_file
from tests.conftest import REPO_ROOT

EXAMPLES = sorted((REPO_ROOT / "example_dags").glob("example_*.py"))


def test_every_example_dag_imports_cleanly():
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    # Examples come from the dags folder setting on 2.11 and are gone in 3.x: off either way.
    bag = DagBag(dag_folder=str(REPO_ROOT / "example_dags"))
    assert bag.import_errors == {}
    assert {Path(p).stem for p in EXAMPLES} == {
        "example_dune_pipeline_refresh",
        "example_dune_explicit_nodes",
        "example_dune_pipeline_sensor",
        "example_dune_run_query",
        "example_dune_run_sql",
        "example_dune_execution_sensor",
        "example_dune_query_pipeline",
        "example_dune_refresh_view",
        "example_dune_results_to_storage",
        "example_maia_pipeline",
        "example_dune_fresh_result",
        "example_dune_budget_and_rerun",
    }
    assert len(bag.dags) == len(EXAMPLES)


def _run_example(name: str):
    source = REPO_ROOT / "example_dags" / f"{name}.py"
    target = dags_folder() / source.name
    shutil.copy(source, target)
    return run_dag_file(target, name)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.3)
def test_refresh_example_runs_the_lineage_pipeline_deferred(dune_emulator):
    result = _run_example("example_dune_pipeline_refresh")
    assert result.state == "success"
    pid = result.xcom("refresh_top_dex_projects", "pipeline_execution_id")
    nodes = result.xcom("refresh_top_dex_projects", "node_executions")
    assert [(n["type"], n["name"] or n["query_id"], n["status"]) for n in nodes] == [
        ("materialized_view", "dune.emulator.result_dex_daily_volume", "completed"),
        ("query", 1001, "completed"),
    ]
    # The ids handed downstream are the emulator's own.
    emulated = dune_emulator.pipeline_status(pid)
    assert [
        n.get("query_execution_status", n.get("materialized_view_refresh_status"))["execution_id"]
        for n in emulated["node_executions"]
    ] == [n["execution_id"] for n in nodes]
    assert len(result.xcom("report")) == 2
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/pipelines/execute") == 1
    assert dune_emulator.request_log.count(key_in_url=True) == 0


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.2)
def test_explicit_nodes_example(dune_emulator):
    result = _run_example("example_dune_explicit_nodes")
    assert result.state == "success"
    nodes = result.xcom("refresh_view_then_query", "node_executions")
    assert [(n["node_id"], n["status"]) for n in nodes] == [(1, "completed"), (2, "completed")]
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/pipelines/execute") == 1


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.5)
def test_sensor_example_waits_in_the_triggerer(dune_emulator):
    result = _run_example("example_dune_pipeline_sensor")
    assert result.state == "success"
    assert result.task_states == {"start_pipeline": "success", "wait_for_pipeline": "success"}
    pid = result.xcom("start_pipeline", "pipeline_execution_id")
    assert dune_emulator.pipeline_status(pid)["status"] == "completed"
    assert result.xcom("wait_for_pipeline", "node_executions")[-1]["status"] == "completed"
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/pipelines/execute") == 1


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.2)
def test_run_query_example(dune_emulator):
    result = _run_example("example_dune_run_query")
    assert result.state == "success"
    execution = result.xcom("run_query", "execution")
    assert execution["state"] == "QUERY_STATE_COMPLETED"
    assert f"{execution['result_metadata']['total_row_count']} rows" in result.xcom("describe")
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/query/1001/execute") == 1


@pytest.mark.usefixtures("airflow_db")
def test_run_sql_example_hands_rows_downstream(dune_emulator):
    result = _run_example("example_dune_run_sql")
    assert result.state == "success"
    rows = result.xcom("top_projects", "rows")
    assert len(rows) == 5 == result.xcom("report")
    assert [r["volume_usd"] for r in rows] == sorted((r["volume_usd"] for r in rows), reverse=True)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.3)
def test_execution_sensor_example(dune_emulator):
    result = _run_example("example_dune_execution_sensor")
    assert result.state == "success"
    execution_id = result.xcom("start_query", "execution_id")
    assert result.xcom("wait_for_query", "execution")["execution_id"] == execution_id


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.2)
def test_query_pipeline_example_saves_the_query_node(dune_emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("DUNE_DEMO_OUTPUT", f"file://{tmp_path}")
    result = _run_example("example_dune_query_pipeline")
    assert result.state == "success"
    nodes = result.xcom("run_query_pipeline", "node_executions")
    saved = result.xcom("save_query_result")
    assert saved["execution_id"] == nodes[-1]["execution_id"]
    assert saved["rows"] == len((tmp_path / saved["path"].rsplit("/", 1)[1]).read_text().splitlines()) > 0


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.2)
def test_refresh_view_example(dune_emulator):
    result = _run_example("example_dune_refresh_view")
    assert result.state == "success"
    execution_id = result.xcom("refresh_dex_daily_volume")
    assert dune_emulator.execution_status(execution_id)["state"] == "QUERY_STATE_COMPLETED"
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/materialized-views/") == 1


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dune_emulator(execution_seconds=0.2)
def test_results_to_storage_example_writes_parquet(dune_emulator, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setenv("DUNE_DEMO_OUTPUT", f"file://{tmp_path}")
    result = _run_example("example_dune_results_to_storage")
    assert result.state == "success"
    saved = result.xcom("save_as_parquet")
    table = pq.read_table(tmp_path / saved["path"].rsplit("/", 1)[1])
    assert table.num_rows == saved["rows"] > 0
    assert table.column_names == ["block_date", "project", "trades", "volume_usd"]


@pytest.mark.usefixtures("airflow_db")
# Runs that end at once: the example polls every 2 s, and deferral is covered in tests/maia.
@pytest.mark.dune_emulator(maia_execution_seconds=0.0)
def test_maia_example_runs_both_pipelines(dune_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MAIA_DEFAULT", dune_emulator.maia_airflow_conn_json())
    result = _run_example("example_maia_pipeline")
    assert result.state == "success"
    assert result.task_states == {
        "load_orders": "success",
        "start_marts": "success",
        "wait_for_marts": "success",
    }
    for task in ("load_orders", "wait_for_marts"):
        assert result.xcom(task, "pipeline_status") == "SUCCESS"
    marts = result.xcom("start_marts", "pipeline_execution_id")
    assert dune_emulator.maia_execution_status(marts) == "SUCCESS"
    assert dune_emulator.request_log.count(method="POST", path_prefix="/dpc/") == 2
    assert dune_emulator.request_log.count(key_in_url=True) == 0


@pytest.mark.usefixtures("airflow_db")
def test_fresh_result_example_reuses_what_the_schedule_made(dune_emulator):
    result = _run_example("example_dune_fresh_result")
    assert result.state == "success"
    refreshed = result.xcom("scheduled_refresh")
    assert result.xcom("copy_latest_result")["execution_id"] == refreshed
    assert result.xcom("reuse_or_run") == refreshed
    assert result.xcom("reuse_or_run", "result_source") == "reused"
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/query/1003/execute") == 1


@pytest.mark.usefixtures("airflow_db")
def test_budget_and_rerun_example_retries_only_the_failed_part(dune_emulator):
    result = _run_example("example_dune_budget_and_rerun")
    assert result.state == "success"
    nodes = result.xcom("refresh_then_report", "node_executions")
    assert [(n["node_id"], n["status"]) for n in nodes] == [
        (1, "completed"),
        (2, "completed"),
        (3, "completed"),
    ]
    assert result.xcom("refresh_then_report", "skipped_nodes")[0].startswith("node 1 (view ")
    # This try ran nodes 2 and 3: 10 credits each on the emulator's medium tier.
    assert result.xcom("refresh_then_report", "credits_used") == 20
