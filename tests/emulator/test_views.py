from __future__ import annotations

from pathlib import Path

from airflow_provider_dune.emulator import DuneEmulator
from tests.emulator.conftest import Api


def test_view_lifecycle_and_refresh_materializes(emulator: DuneEmulator, api: Api) -> None:
    source_id = api.post("/v1/query", json={"name": "src", "query_sql": "SELECT 41 + 1 AS answer"}).json()[
        "query_id"
    ]
    # The upsert takes the short name, starts a refresh and names the view in full.
    upserted = api.post("/v1/materialized-views", json={"name": "result_answers", "query_id": source_id})
    assert upserted.status_code == 200
    full_name = "dune.emulator.result_answers"
    assert set(upserted.json()) == {"execution_id", "name"}
    assert upserted.json()["name"] == full_name
    first_refresh = upserted.json()["execution_id"]
    assert emulator.wait_for_execution(first_refresh)["state"] == "QUERY_STATE_COMPLETED"

    listed = api.get("/v1/materialized-views").json()["materialized_views"]
    assert full_name in [view["sql_id"] for view in listed]
    assert "dune.emulator.result_dex_daily_volume" in [view["sql_id"] for view in listed]
    assert set(listed[0]) == {"id", "sql_id", "query_id", "is_private", "table_size_bytes"}
    view = api.get(f"/v1/materialized-views/{full_name}").json()
    assert (view["sql_id"], view["query_id"], view["last_execution_ids"]) == (
        full_name,
        source_id,
        [first_refresh],
    )
    assert "name" not in view and "performance" not in view
    # Read and delete take the full name: Dune answers a short one 404.
    assert api.get("/v1/materialized-views/result_answers").status_code == 404

    refresh = api.post("/v1/materialized-views/result_answers/refresh", json={})
    assert refresh.status_code == 200
    assert refresh.json()["sql_id"] == full_name
    assert emulator.wait_for_execution(refresh.json()["execution_id"])["state"] == "QUERY_STATE_COMPLETED"
    assert (
        api.get(f"/v1/materialized-views/{full_name}").json()["last_execution_ids"][0]
        == (refresh.json()["execution_id"])
    )

    reader = api.post("/v1/sql/execute", json={"sql": f"SELECT answer FROM {full_name}"}).json()[
        "execution_id"
    ]
    emulator.wait_for_execution(reader)
    assert api.get(f"/v1/execution/{reader}/results").json()["result"]["rows"] == [{"answer": 42}]

    # A query reading the new view gets it in its lineage.
    reader_id = api.post("/v1/query", json={"name": "r", "query_sql": f"SELECT * FROM {full_name}"}).json()[
        "query_id"
    ]
    nodes = api.get(f"/v1/query/{reader_id}/pipeline").json()["pipeline"]["nodes"]
    assert nodes[0]["materialized_view_refresh"]["name"] == full_name

    deleted = api.delete(f"/v1/materialized-views/{full_name}")
    assert deleted.status_code == 200 and "message" in deleted.json()
    assert api.get(f"/v1/materialized-views/{full_name}").status_code == 404


def test_upsert_view_validation(emulator: DuneEmulator, api: Api) -> None:
    started = len(emulator.execution_ids())
    upsert = "/v1/materialized-views"
    assert api.post(upsert, json={"name": "result_x", "query_id": 999999}).status_code == 404
    assert api.post(upsert, json={"name": "result_x"}).status_code == 400
    no_prefix = api.post(upsert, json={"name": "x", "query_id": 1003})
    assert no_prefix.status_code == 400 and "must start with result_" in no_prefix.json()["error"]
    assert (
        api.post(upsert, json={"name": "result_x", "query_id": 1003, "performance": "small"}).status_code
        == 400
    )
    bad_cron = api.post(upsert, json={"name": "result_x", "query_id": 1003, "cron_expression": "hourly"})
    assert bad_cron.status_code == 400
    assert api.post("/v1/materialized-views/dune.emulator.result_nope/refresh").status_code == 404
    assert len(emulator.execution_ids()) == started  # nothing refused started anything


def test_upsert_into_another_namespace_is_refused_at_once(emulator: DuneEmulator, api: Api) -> None:
    started = len(emulator.execution_ids())
    refused = api.post("/v1/materialized-views", json={"name": "dune.other_team.result_x", "query_id": 1003})
    assert refused.status_code == 400
    assert "your own namespace dune.emulator" in refused.json()["error"]
    assert len(emulator.execution_ids()) == started
    # Another team's view cannot be read or deleted; refreshing it finds nothing.
    assert api.get("/v1/materialized-views/dune.other_team.result_x").status_code == 403
    assert api.delete("/v1/materialized-views/dune.other_team.result_x").status_code == 403
    assert api.post("/v1/materialized-views/dune.other_team.result_x/refresh").status_code == 404


def test_upsert_of_a_name_built_by_another_query_conflicts(emulator: DuneEmulator, api: Api) -> None:
    conflict = api.post("/v1/materialized-views", json={"name": "result_dex_daily_volume", "query_id": 1003})
    assert conflict.status_code == 409
    assert "already exists for query 1000" in conflict.json()["error"]
    same = api.post(
        "/v1/materialized-views",
        json={"name": "result_dex_daily_volume", "query_id": 1000, "cron_expression": "0 * * * *"},
    )
    assert same.status_code == 200


def test_chained_views_give_multi_level_lineage() -> None:
    catalog = {
        "team": "acme",
        "queries": [
            {"id": 1, "name": "base", "sql": "SELECT range AS n FROM range(10)"},
            {"id": 2, "name": "mid", "sql": "SELECT n * 2 AS n FROM dune.acme.result_base"},
            {
                "id": 3,
                "name": "top",
                "sql": "SELECT (SELECT sum(n) FROM dune.acme.result_mid)"
                " + (SELECT count(*) FROM dune.acme.result_base) AS total",
            },
        ],
        "materialized_views": [{"name": "base", "query_id": 1}, {"name": "mid", "query_id": 2}],
    }
    with DuneEmulator(api_key="k", catalog=catalog, execution_seconds=0) as emulator:
        api = Api(emulator)
        nodes = api.get("/v1/query/3/pipeline").json()["pipeline"]["nodes"]
        assert [(node["id"], node["dependencies"]) for node in nodes] == [(1, []), (2, [1]), (3, [2, 1])]
        pipeline_execution_id = api.post("/v1/pipelines/execute", json={"query_id": 3}).json()[
            "pipeline_execution_id"
        ]
        status = emulator.wait_for_pipeline(pipeline_execution_id)
        assert status["status"] == "completed"
        execution_id = status["node_executions"][-1]["query_execution_status"]["execution_id"]
        assert api.get(f"/v1/execution/{execution_id}/results").json()["result"]["rows"] == [{"total": 100}]


def test_catalog_from_yaml_file(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "queries:\n"
        "  - id: 7\n"
        "    name: seven\n"
        "    sql: SELECT {{n}} AS n\n"
        "    parameters: [{key: n, type: number, value: '7'}]\n"
    )
    with DuneEmulator(api_key="k", catalog=catalog, execution_seconds=0) as emulator:
        api = Api(emulator)
        assert api.get("/v1/query/7").json()["name"] == "seven"
        assert api.get("/v1/query/1001").status_code == 404
        execution_id = api.post("/v1/query/7/execute").json()["execution_id"]
        emulator.wait_for_execution(execution_id)
        assert api.get(f"/v1/execution/{execution_id}/results").json()["result"]["rows"] == [{"n": 7}]
