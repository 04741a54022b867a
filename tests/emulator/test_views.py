from __future__ import annotations

from pathlib import Path

from airflow_provider_dune.emulator import DuneEmulator
from tests.emulator.conftest import Api


def test_view_lifecycle_and_refresh_materializes(emulator: DuneEmulator, api: Api) -> None:
    source_id = api.post("/v1/query", json={"name": "src", "query_sql": "SELECT 41 + 1 AS answer"}).json()[
        "query_id"
    ]
    upserted = api.post("/v1/materialized-views", json={"name": "answers", "query_id": source_id})
    assert upserted.status_code == 200
    full_name = "dune.emulator.result_answers"
    assert upserted.json()["name"] == full_name

    names = [view["name"] for view in api.get("/v1/materialized-views").json()["materialized_views"]]
    assert full_name in names and "dune.emulator.result_dex_daily_volume" in names
    assert api.get(f"/v1/materialized-views/{full_name}").json()["query_id"] == source_id
    assert api.get("/v1/materialized-views/result_answers").status_code == 200

    refresh = api.post(f"/v1/materialized-views/{full_name}/refresh", json={})
    assert refresh.status_code == 200
    assert emulator.wait_for_execution(refresh.json()["execution_id"])["state"] == "QUERY_STATE_COMPLETED"

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

    assert api.delete(f"/v1/materialized-views/{full_name}").status_code == 200
    assert api.get(f"/v1/materialized-views/{full_name}").status_code == 404


def test_upsert_view_validation(api: Api) -> None:
    assert api.post("/v1/materialized-views", json={"name": "x", "query_id": 999999}).status_code == 400
    assert api.post("/v1/materialized-views", json={"name": "x"}).status_code == 400
    assert api.post("/v1/materialized-views/dune.emulator.result_nope/refresh").status_code == 404


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
