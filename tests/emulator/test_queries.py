from __future__ import annotations

from airflow_provider_dune.emulator import DuneEmulator
from tests.emulator.conftest import Api


def test_create_read_update_query(api: Api) -> None:
    created = api.post(
        "/v1/query",
        json={
            "name": "big trades",
            "query_sql": "SELECT count(*) AS n FROM dex.trades WHERE amount_usd > {{min}}",
            "parameters": [{"key": "min", "type": "number", "value": "1000"}],
        },
    )
    assert created.status_code == 200
    query_id = created.json()["query_id"]
    assert isinstance(query_id, int)

    read = api.get(f"/v1/query/{query_id}").json()
    assert read["query_id"] == query_id
    assert read["name"] == "big trades"
    assert "{{min}}" in read["query_sql"]
    assert read["parameters"][0]["key"] == "min"

    patched = api.patch(f"/v1/query/{query_id}", json={"name": "renamed"})
    assert patched.json() == {"query_id": query_id}
    assert api.get(f"/v1/query/{query_id}").json()["name"] == "renamed"


def test_create_query_needs_name_and_sql(api: Api) -> None:
    response = api.post("/v1/query", json={"name": "no sql"})
    assert response.status_code == 400
    assert "query_sql" in response.json()["error"]


def test_bad_json_body_is_400(api: Api) -> None:
    response = api.post("/v1/query", data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()


def test_unknown_query_is_404(api: Api) -> None:
    assert api.get("/v1/query/999999").status_code == 404
    assert api.patch("/v1/query/999999", json={"name": "x"}).status_code == 404
    assert api.post("/v1/query/999999/execute", json={}).status_code == 404


def test_execute_query_with_parameters(emulator: DuneEmulator, api: Api) -> None:
    query_id = api.post(
        "/v1/query", json={"name": "p", "query_sql": "SELECT {{n}} * 2 AS doubled, '{{word}}' AS word"}
    ).json()["query_id"]
    submitted = api.post(f"/v1/query/{query_id}/execute", json={"query_parameters": {"n": 21, "word": "hi"}})
    assert submitted.status_code == 200
    body = submitted.json()
    assert body["state"] == "QUERY_STATE_PENDING"
    status = emulator.wait_for_execution(body["execution_id"])
    assert status["state"] == "QUERY_STATE_COMPLETED"
    rows = api.get(f"/v1/execution/{body['execution_id']}/results").json()["result"]["rows"]
    assert rows == [{"doubled": 42, "word": "hi"}]


def test_missing_parameter_is_400(api: Api) -> None:
    query_id = api.post("/v1/query", json={"name": "p", "query_sql": "SELECT {{x}} AS x"}).json()["query_id"]
    response = api.post(f"/v1/query/{query_id}/execute", json={})
    assert response.status_code == 400
    assert "x" in response.json()["error"]


def test_sql_execute(emulator: DuneEmulator, api: Api) -> None:
    submitted = api.post(
        "/v1/sql/execute", json={"sql": "SELECT count(*) AS blocks FROM ethereum.blocks"}
    ).json()
    assert submitted["state"] == "QUERY_STATE_PENDING"
    assert len(submitted["execution_id"]) == 26
    emulator.wait_for_execution(submitted["execution_id"])
    rows = api.get(f"/v1/execution/{submitted['execution_id']}/results").json()["result"]["rows"]
    assert rows == [{"blocks": 360}]


def test_bad_performance_is_400(api: Api) -> None:
    response = api.post("/v1/sql/execute", json={"sql": "SELECT 1", "performance": "huge"})
    assert response.status_code == 400
