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
