from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_dune.emulator import DuneEmulator
from tests.emulator.conftest import Api

VIEW = "dune.emulator.result_dex_daily_volume"


def poll_pipeline(api: Api, pipeline_execution_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = api.get(f"/v1/pipelines/executions/{pipeline_execution_id}/status").json()
        if status["status"] == "completed" or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def node_status(node: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = node.get("query_execution_status") or node["materialized_view_refresh_status"]
    return status


def test_lineage_pipeline_refreshes_view_then_runs_query(emulator: DuneEmulator, api: Api) -> None:
    response = api.post("/v1/pipelines/execute", json={"query_id": 1001, "performance": "medium"})
    assert response.status_code == 200
    pipeline_execution_id = response.json()["pipeline_execution_id"]
    assert len(pipeline_execution_id) == 26 and pipeline_execution_id.startswith("0")

    status = poll_pipeline(api, pipeline_execution_id)
    assert status["status"] == "completed"
    assert "error" not in status
    view_node, query_node = status["node_executions"]
    assert view_node["id"] == 1
    assert view_node["materialized_view_refresh_status"]["name"] == VIEW
    assert view_node["materialized_view_refresh_status"]["status"] == "completed"
    assert query_node["id"] == 2
    assert query_node["query_execution_status"]["query_id"] == 1001
    assert query_node["query_execution_status"]["status"] == "completed"

    view_execution = api.get(
        f"/v1/execution/{view_node['materialized_view_refresh_status']['execution_id']}/status"
    )
    query_execution = api.get(f"/v1/execution/{query_node['query_execution_status']['execution_id']}/status")
    # The query only starts once the view refresh has ended.
    assert query_execution.json()["execution_started_at"] >= view_execution.json()["execution_ended_at"]
    rows = api.get(f"/v1/execution/{query_node['query_execution_status']['execution_id']}/results").json()
    assert len(rows["result"]["rows"]) == 5


def test_lineage_passes_query_parameters(emulator: DuneEmulator, api: Api) -> None:
    pipeline_execution_id = api.post(
        "/v1/pipelines/execute", json={"query_id": 1001, "query_parameters": {"min_volume_usd": 1e12}}
    ).json()["pipeline_execution_id"]
    status = emulator.wait_for_pipeline(pipeline_execution_id)
    execution_id = status["node_executions"][-1]["query_execution_status"]["execution_id"]
    assert api.get(f"/v1/execution/{execution_id}/results").json()["result"]["rows"] == []


def test_explicit_nodes_run_in_dependency_order(emulator: DuneEmulator, api: Api) -> None:
    body = {
        "pipeline": {
            "nodes": [
                {
                    "id": 10,
                    "dependencies": [],
                    "materialized_view_refresh": {"name": VIEW, "performance": "large"},
                },
                {
                    "id": 20,
                    "dependencies": [10],
                    "query_execution": {"query_id": 1001, "performance": "medium"},
                },
                {"id": 30, "dependencies": [], "query_execution": {"query_id": 1003}},
            ]
        }
    }
    pipeline_execution_id = api.post("/v1/pipelines/execute", json=body).json()["pipeline_execution_id"]
    status = poll_pipeline(api, pipeline_execution_id)
    assert status["status"] == "completed"
    assert "error" not in status
    assert [node["id"] for node in status["node_executions"]] == [10, 20, 30]
    assert all(node_status(node)["status"] == "completed" for node in status["node_executions"])


def test_only_documented_tiers_are_accepted(api: Api) -> None:
    # Dune documents medium and large for every endpoint that takes a tier.
    node = {"id": 1, "query_execution": {"query_id": 1003, "performance": "small"}}
    response = api.post("/v1/pipelines/execute", json={"pipeline": {"nodes": [node]}})
    assert response.status_code == 400
    assert "medium, large" in response.json()["error"]
    assert api.post("/v1/sql/execute", json={"sql": "SELECT 1", "performance": "small"}).status_code == 400


def test_failed_node_fails_pipeline_and_skips_downstream(emulator: DuneEmulator, api: Api) -> None:
    body = {
        "pipeline": {
            "nodes": [
                {"id": 1, "dependencies": [], "query_execution": {"query_id": 1002}},
                {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1003}},
                {"id": 3, "dependencies": [], "query_execution": {"query_id": 1003}},
            ]
        }
    }
    pipeline_execution_id = api.post("/v1/pipelines/execute", json=body).json()["pipeline_execution_id"]
    status = poll_pipeline(api, pipeline_execution_id)
    # Dune documents pending, executing and completed: a failed pipeline is completed with an error.
    assert status["status"] == "completed"
    failed, skipped, independent = (node_status(node) for node in status["node_executions"])
    assert failed["status"] == "failed"
    assert failed["error"].startswith("line 3:3: Column 'amount_usd_typo' cannot be resolved")
    assert skipped == {"status": "skipped", "query_id": 1003}
    assert independent["status"] == "completed"
    assert "node 1 (query 1002) failed: line 3:3" in status["error"]
    error = api.get(f"/v1/execution/{failed['execution_id']}/status").json()["error"]
    assert error["metadata"] == {"line": 3, "column": 3}


def test_cancelling_a_node_cancels_the_pipeline(emulator: DuneEmulator, api: Api) -> None:
    emulator.execution_seconds = 10
    pipeline_execution_id = api.post("/v1/pipelines/execute", json={"query_id": 1001}).json()[
        "pipeline_execution_id"
    ]
    first = api.get(f"/v1/pipelines/executions/{pipeline_execution_id}/status").json()
    assert first["status"] in ("pending", "executing")
    view_execution_id = first["node_executions"][0]["materialized_view_refresh_status"]["execution_id"]
    assert first["node_executions"][1]["query_execution_status"] == {"status": "pending", "query_id": 1001}
    assert api.post(f"/v1/execution/{view_execution_id}/cancel").json() == {"success": True}
    status = poll_pipeline(api, pipeline_execution_id)
    assert status["status"] == "completed"
    assert "was cancelled" in status["error"]
    assert [node_status(node)["status"] for node in status["node_executions"]] == ["cancelled", "skipped"]


@pytest.mark.parametrize(
    ("vocabulary", "expected"),
    [
        ("words", ["failed", "skipped", "completed"]),
        ("query_state", ["QUERY_STATE_FAILED", "QUERY_STATE_PENDING", "QUERY_STATE_COMPLETED"]),
        ("upper", ["FAILED", "SKIPPED", "SUCCESS"]),
    ],
)
def test_node_vocabulary_is_selectable(vocabulary: str, expected: list[str]) -> None:
    nodes = [
        {"id": 1, "query_execution": {"query_id": 1002}},
        {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1003}},
        {"id": 3, "query_execution": {"query_id": 1003}},
    ]
    with DuneEmulator(api_key="k", execution_seconds=0, node_vocabulary=vocabulary) as dune:
        pipeline_execution_id = Api(dune).post("/v1/pipelines/execute", json={"pipeline": {"nodes": nodes}})
        status = dune.wait_for_pipeline(pipeline_execution_id.json()["pipeline_execution_id"])
    assert status["status"] == "completed" and status["error"]
    assert [node_status(node)["status"] for node in status["node_executions"]] == expected


def test_unknown_node_vocabulary_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown node vocabulary 'snake'"):
        DuneEmulator(node_vocabulary="snake")


def test_query_pipeline_definition_and_execute(emulator: DuneEmulator, api: Api) -> None:
    definition = api.get("/v1/query/1001/pipeline").json()
    assert definition == {
        "pipeline": {
            "nodes": [
                {
                    "id": 1,
                    "dependencies": [],
                    "materialized_view_refresh": {"name": VIEW, "performance": "medium"},
                },
                {
                    "id": 2,
                    "dependencies": [1],
                    "query_execution": {"query_id": 1001, "performance": "medium", "query_parameters": {}},
                },
            ]
        },
    }
    assert len(api.get("/v1/query/1003/pipeline").json()["pipeline"]["nodes"]) == 1
    pipeline_execution_id = api.post("/v1/query/1001/pipeline/execute", json={}).json()[
        "pipeline_execution_id"
    ]
    assert emulator.wait_for_pipeline(pipeline_execution_id)["status"] == "completed"
    assert api.get("/v1/query/424242/pipeline").status_code == 404
    assert api.post("/v1/query/424242/pipeline/execute").status_code == 404


def test_unknown_pipeline_execution_is_404(api: Api) -> None:
    response = api.get("/v1/pipelines/executions/01UNKNOWN/status")
    assert response.status_code == 404
    assert "error" in response.json()


def _nodes(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"pipeline": {"nodes": list(nodes)}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "query_id or pipeline"),
        ({"query_id": 999999}, "999999"),
        ({"query_id": "1001"}, "integer"),
        ({"query_id": 1001, "performance": "turbo"}, "performance"),
        (_nodes(), "non-empty"),
        (_nodes({"id": 1, "query_execution": {"query_id": 999999}}), "999999"),
        (
            _nodes({"id": 1, "materialized_view_refresh": {"name": "dune.emulator.result_nope"}}),
            "result_nope",
        ),
        (_nodes({"id": 1, "dependencies": [7], "query_execution": {"query_id": 1003}}), "unknown node 7"),
        (
            _nodes(
                {"id": 1, "dependencies": [2], "query_execution": {"query_id": 1003}},
                {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1003}},
            ),
            "cycle",
        ),
        (_nodes({"id": 1, "query_execution": {"query_id": 1003, "performance": "xl"}}), "performance"),
        (_nodes({"id": 1}), "exactly one"),
        (
            _nodes(
                {"id": 1, "query_execution": {"query_id": 1003}},
                {"id": 1, "query_execution": {"query_id": 1003}},
            ),
            "duplicate",
        ),
    ],
)
def test_invalid_pipelines_are_400(api: Api, body: dict[str, Any], message: str) -> None:
    response = api.post("/v1/pipelines/execute", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_independent_nodes_run_concurrently(emulator: DuneEmulator, api: Api) -> None:
    emulator.execution_seconds = 0.5
    node = {"dependencies": [], "query_execution": {"query_id": 1003}}
    body = _nodes({"id": 1, **node}, {"id": 2, **node}, {"id": 3, **node})
    started = time.monotonic()
    pipeline_execution_id = api.post("/v1/pipelines/execute", json=body).json()["pipeline_execution_id"]
    assert emulator.wait_for_pipeline(pipeline_execution_id)["status"] == "completed"
    assert time.monotonic() - started < 1.4
